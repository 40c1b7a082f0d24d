"""File names shown exactly but safely (see ``symlinkd.report``): escaped for a terminal,
exact (plus base64 bytes when not UTF-8) in JSON."""

from __future__ import annotations

import base64
import os
import unicodedata
from typing import Any

# bidi overrides can make a name display as another name
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def fs_bytes(name: str) -> bytes:
    try:
        return os.fsencode(name)
    except UnicodeEncodeError:  # a surrogate that did not come from the filesystem
        return name.encode("utf-8", "backslashreplace")


def printable(name: str) -> str:
    """``name`` as one safe terminal line: control/bidi characters and invalid bytes escaped."""
    text = fs_bytes(name).decode("utf-8", "backslashreplace")
    out: list[str] = []
    for char in text:
        if char in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[char])
        elif unicodedata.category(char) == "Cc" or char in _BIDI:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def json_name(name: str | None) -> tuple[str | None, str | None]:
    """(text, base64 of the exact bytes or None): the text is exact when the name is UTF-8."""
    if name is None:
        return None, None
    if name.isascii():  # nearly every name: exact as it is (no surrogate escapes in ASCII)
        return name, None
    data = fs_bytes(name)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return data.decode("utf-8", "backslashreplace"), base64.b64encode(data).decode("ascii")


def put_name(doc: dict[str, Any], key: str, name: str | None) -> None:
    text, b64 = json_name(name)
    doc[key] = text
    if b64 is not None:
        doc[f"{key}_b64"] = b64
