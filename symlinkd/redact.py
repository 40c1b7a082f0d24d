"""The one redaction rule: what in a text is a secret, whoever prints it (config errors,
``config check``, logs, the daemon's reload messages).

- The userinfo of a URL: ``http://user:PASSWORD@host`` keeps the user (it names the account) and
  hides the password; ``http://TOKEN@host`` (userinfo without a colon) hides it all.
- The value of any ``name=value`` pair (a URL query, a fragment, or free text) whose name looks
  like a credential, case-insensitively: it contains ``key``, ``token``, ``pass``, ``pwd``,
  ``secret``, ``auth``, ``sig``, ``session`` or ``credential`` (``apikey``, ``api_key``,
  ``X-Plex-Token``, ``X-Api-Key``, ``password``, ``access_token``, ...). Hiding one harmless value
  too many is the cheap mistake.

The result is still a valid URL (``<redacted>`` parses as a password or a query value), so the
output of ``config check`` loads back. Known secret strings (a token read from a file) are a
second, separate layer: see ``scrub``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "<redacted>"

_CREDENTIAL_NAME = r"[A-Za-z0-9_.-]*(?:key|token|pass|pwd|secret|auth|sig|session|credential)" \
                   r"[A-Za-z0-9_.-]*"
# scheme://userinfo@ — userinfo runs up to the last '@' before the host part ends.
# (greedy: an unencoded '@' in a password belongs to it, as urllib and httpx parse it)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s'\"]*)@")
_PARAM = re.compile(
    rf"(?P<lead>(?:^|[?&;#\s'\"(]))(?P<name>{_CREDENTIAL_NAME})=(?P<value>[^&;#\s'\")]*)",
    re.IGNORECASE,
)


def redact_text(text: str, mask: str = MASK) -> str:
    """``text`` with URL userinfo and credential-looking ``name=value`` values replaced by
    ``mask``. Idempotent; text without either comes back unchanged."""

    def userinfo(match: re.Match[str]) -> str:
        user, colon, password = match["info"].partition(":")
        if colon:
            return f"{match['scheme']}{user}:{mask if password else ''}@"
        return f"{match['scheme']}{mask if user else ''}@"

    def param(match: re.Match[str]) -> str:
        value = mask if match["value"] else ""
        return f"{match['lead']}{match['name']}={value}"

    return _PARAM.sub(param, _USERINFO.sub(userinfo, text))


def scrub(text: str, secrets: Iterable[str], mask: str = MASK) -> str:
    """``text`` with every occurrence of a known secret replaced by ``mask``, longest first (a
    secret that contains another is hidden whole). Strings under 4 characters are ignored: they
    would blank out ordinary words, and no real token is that short."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, mask)
    return text


def redact(text: str, secrets: Iterable[str] = (), mask: str = MASK) -> str:
    """Both layers: known secrets, then the rule."""
    return redact_text(scrub(text, secrets, mask), mask)
