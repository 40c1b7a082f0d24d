"""Semantic checks the schema cannot express: absolute paths, a farm that overlaps a mount,
duplicate mounts, URLs, listen addresses, cron lines and secret files. Each check tolerates values
of the wrong type (the schema already reported those) so one run reports every problem."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from symlinkd.config_files import KIB, NotReadable, read_small_file
from symlinkd.config_paths import Place, relation_problems, resolve_places
from symlinkd.errors import ConfigError
from symlinkd.redact import redact
from symlinkd.settings import Secret

Key = tuple[str | int, ...]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*$")

MAX_SECRET_BYTES = 64 * KIB

# Problems are listed in the order of the sample config (stable within a section).
_SECTION_ORDER: dict[Key, int] = {
    (): 0, ("farm",): 1, ("state_dir",): 2, ("mounts",): 3, ("timeouts",): 4, ("policy",): 5,
    ("notify",): 6, ("daemon",): 7,
}

# (section key, secret name, required when the section is configured)
_SECRETS: tuple[tuple[Key, str, bool], ...] = (
    (("notify", "plex"), "token", True),
    (("notify", "jellyfin"), "token", True),
    (("notify", "sonarr"), "api_key", True),
    (("notify", "radarr"), "api_key", True),
    (("daemon",), "webhook_token", False),
)


def holds_secret(key: Key) -> bool:
    """True for a secret's key, anything inside it, and every section on the way to one
    (``notify``, ``notify.plex``, ``daemon``, the root): a wrong-typed value there may be the
    secret itself (``SYMLINKD_NOTIFY__PLEX=<token>``), so it is described by its type only."""
    for section, name, _ in _SECRETS:
        secret = (*section, name)
        if key[: len(secret)] == secret or secret[: len(key)] == key:
            return True
    return False


def secret_values(data: Any) -> set[str]:
    """Every scalar found at a secret's key (``token``, ``api_key``, ``webhook_token``), as text:
    what an error message must never show, whatever its type."""
    found: set[str] = set()
    for section, name, _ in _SECRETS:
        node = _get(data, section)
        if isinstance(node, dict) and name in node:
            found |= _scalars(node[name])
    return found


def _scalars(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {s for k, v in value.items() for s in (*_scalars(k), *_scalars(v))}
    if isinstance(value, list):
        return {s for v in value for s in _scalars(v)}
    return {str(value)} if value is not None else set()


def describe_type(value: Any) -> str:
    """A value by its type and size, never its text (for keys that may hold a secret)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return f"a string of {_count(len(value), 'character')}"
    if isinstance(value, list):
        return f"a list of {_count(len(value), 'item')}"
    if isinstance(value, dict):
        return f"a mapping of {_count(len(value), 'key')}"
    return f"a {type(value).__name__}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_key(key: Key) -> str:
    out = ""
    for index, part in enumerate(key):
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part) and key[index - 1 : index] != ("path_map",):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


class Problems:
    """Every problem found, in the order found; ``origins`` names the environment variable behind
    a key so a message can say where a bad value came from."""

    def __init__(self) -> None:
        self.items: list[tuple[Key, str]] = []
        self.origins: dict[Key, str] = {}
        # Secret values seen while loading (even invalid ones): scrubbed from every message and
        # key path on the way out, after the redaction rule's URL userinfo and parameters.
        self.secrets: set[str] = set()

    def add(self, key: Key, message: str) -> None:
        if (key, message) not in self.items:
            self.items.append((key, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            items = sorted(self.items, key=lambda item: _SECTION_ORDER.get(item[0][:1], 99))
            raise ConfigError([(_cut(redact(format_key(k), self.secrets)),
                                 _cut(redact(self._with_origin(k, m), self.secrets)))
                                for k, m in items])

    def _with_origin(self, key: Key, message: str) -> str:
        for end in range(len(key), 0, -1):
            name = self.origins.get(key[:end])
            if name is not None:
                return f"{message} (set by {name})"
        return message


MAX_MESSAGE = 1000  # a few long paths fit; a quoted 25 MB value does not


def _cut(text: str) -> str:
    """A message quoting a huge value is cut (after redaction: a cut must not halve a secret
    and so slip past the scrub)."""
    if len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE - 40]}… ({len(text)} characters, cut)"


def check_semantics(
    data: dict[str, Any], from_env: Mapping[Key, str], problems: Problems
) -> dict[Key, Secret]:
    """Runs every semantic check; normalises paths in ``data``; returns the secrets read, by the
    key they belong at (``("notify", "plex", "token")``)."""
    _refuse_nul(data, (), problems)
    farm = _abs_path(data, ("farm",), problems)
    state_dir = _abs_path(data, ("state_dir",), problems)
    quarantine = _abs_path(data, ("policy", "quarantine_dir"), problems)
    mounts = _check_mounts(data, problems)
    if farm == "/":
        problems.add(("farm",), "the farm cannot be the root directory")
    else:
        _check_relations(farm, state_dir, quarantine, mounts, problems)
    for key in (("policy", "include"), ("policy", "exclude")):
        globs = _get(data, key)
        for index, glob in enumerate(globs if isinstance(globs, list) else ()):
            if isinstance(glob, str) and glob.startswith("/"):
                problems.add((*key, index), f"{glob!r}: globs are relative to the farm "
                                            "(e.g. 'Shows/**')")
    _check_notify(data, problems)
    _check_daemon(data, problems)
    return _read_secrets(data, from_env, problems)


def _refuse_nul(node: Any, key: Key, problems: Problems) -> None:
    """A NUL byte ends a path in every system call (Python raises ValueError on it); no string
    of the config may hold one. The value is dropped so later checks pass over it."""
    items: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    for name, value in items:
        here = (*key, name)
        if isinstance(name, str) and "\0" in name:
            problems.add(key, f"a key contains a NUL byte ({name!r})")
            node[name] = None
        elif isinstance(value, str) and "\0" in value:
            problems.add(here, "contains a NUL byte (\\0)")
            node[name] = None
        else:
            _refuse_nul(value, here, problems)


def _get(data: Any, key: Key) -> Any:
    for part in key:
        if isinstance(part, int) and isinstance(data, list) and part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def _abs_path(data: dict[str, Any], key: Key, problems: Problems) -> str | None:
    """The normalised absolute path at ``key`` (written back), or None with a problem."""
    value = _get(data, key)
    if not isinstance(value, str) or not value:
        return None
    if not value.startswith("/"):
        problems.add(key, f"{value!r} is a relative path; use an absolute path")
        return None
    norm = os.path.normpath(value)
    parent = _get(data, key[:-1]) if len(key) > 1 else data
    if isinstance(parent, dict | list):
        parent[key[-1]] = norm  # type: ignore[index]
    return norm


def _check_mounts(data: dict[str, Any], problems: Problems) -> list[tuple[Key, str, str]]:
    mounts = data.get("mounts")
    found: list[tuple[Key, str, str]] = []
    names: dict[str, int] = {}
    paths: dict[str, int] = {}
    for index, mount in enumerate(mounts if isinstance(mounts, list) else ()):
        if not isinstance(mount, dict):
            continue
        key: Key = ("mounts", index)
        name = mount.get("name")
        if isinstance(name, str):
            first = names.setdefault(name.lower(), index)
            if first != index:
                problems.add((*key, "name"), f"duplicate mount name {name!r} "
                                             f"(also mounts[{first}].name)")
        path = _abs_path(data, (*key, "path"), problems)
        if path is not None:
            first = paths.setdefault(path, index)
            if first != index:
                problems.add((*key, "path"), f"duplicate mount path {path} "
                                             f"(also mounts[{first}].path)")
            elif path == "/":
                problems.add((*key, "path"), "a mount cannot be the root directory")
            else:
                found.append(((*key, "path"), str(name), path))
        anchor = mount.get("anchor")
        if isinstance(anchor, str) and (anchor.startswith("/") or ".." in anchor.split("/")):
            problems.add((*key, "anchor"), f"{anchor!r}: the anchor is a folder name relative "
                                           "to the mount (e.g. __all__), without '..'")
        _check_url(mount.get("rc_url"), (*key, "rc_url"), problems)
    return found


def _check_relations(
    farm: str | None, state_dir: str | None, quarantine: str | None,
    mounts: list[tuple[Key, str, str]], problems: Problems,
) -> None:
    """The path-relation rule of ``config_paths`` (on configured and resolved paths)."""
    places = [Place(key, role, path, path) for key, role, path in (
        (("farm",), "farm", farm), (("state_dir",), "state", state_dir),
        (("policy", "quarantine_dir"), "quarantine", quarantine),
    ) if path is not None]
    places += [Place(key, "mount", path, path, name) for key, name, path in mounts]
    for key, message in relation_problems(resolve_places(places)):
        problems.add(key, message)


def _check_url(value: Any, key: Key, problems: Problems) -> None:
    if not isinstance(value, str):
        return
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = urlsplit(""), False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        problems.add(key, f"{value!r} is not an http(s) URL with a host "
                          "(e.g. http://plex:32400)")


def _check_notify(data: dict[str, Any], problems: Problems) -> None:
    for server in ("plex", "jellyfin", "sonarr", "radarr"):
        section = _get(data, ("notify", server))
        if not isinstance(section, dict):
            continue
        _check_url(section.get("url"), ("notify", server, "url"), problems)
        path_map = section.get("path_map")
        for prefix in path_map if isinstance(path_map, dict) else ():
            if not str(prefix).startswith("/"):
                problems.add(("notify", server, "path_map", str(prefix)),
                             "path_map keys are symlinkd's absolute path prefixes "
                             "(e.g. /mnt/media)")


def _check_daemon(data: dict[str, Any], problems: Problems) -> None:
    listen = _get(data, ("daemon", "listen"))
    if isinstance(listen, str) and not _valid_listen(listen):
        problems.add(("daemon", "listen"), f"{listen!r} is not HOST:PORT (e.g. 0.0.0.0:9090, "
                                           "[::]:9090, 127.0.0.1:0)")
    cron = _get(data, ("daemon", "scan_cron"))
    if isinstance(cron, str) and cron:
        # heavy import; only when a cron line is set
        from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415

        try:
            CronTrigger.from_crontab(cron)
        except ValueError as exc:
            problems.add(("daemon", "scan_cron"), f"{cron!r} is not a crontab line "
                                                  f"(minute hour day month weekday): {exc}")


def _valid_listen(listen: str) -> bool:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        return False
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()
    return True


def _read_secrets(
    data: dict[str, Any], from_env: Mapping[Key, str], problems: Problems
) -> dict[Key, Secret]:
    found: dict[Key, Secret] = {}
    for section_key, name, required in _SECRETS:
        section = _get(data, section_key)
        if not isinstance(section, dict):
            continue
        inline_key, file_key = (*section_key, name), (*section_key, f"{name}_file")
        inline, path = section.get(name), section.get(f"{name}_file")
        env_name = "SYMLINKD_" + "__".join(str(p).upper() for p in inline_key)
        if inline is not None and not any(
            inline_key[:n] in from_env for n in range(1, len(inline_key) + 1)
        ):
            problems.add(inline_key, f"secrets are not read from the config file; put it in a "
                                     f"file and set {name}_file, or set {env_name}")
            continue
        if inline is not None and path is not None:
            problems.add(section_key, f"set either {name}_file or {name}, not both")
            continue
        if isinstance(inline, str):
            origin = next((from_env[inline_key[:n]] for n in range(len(inline_key), 0, -1)
                           if inline_key[:n] in from_env), env_name)
            if _not_one_line(inline.strip()):
                problems.add(inline_key, f"the value of {origin} {_NOT_ONE_LINE}")
                continue
            found[inline_key] = Secret(inline.strip(), env=origin)
        elif isinstance(path, str):
            secret = _read_secret_file(path, file_key, problems)
            if secret is not None:
                found[inline_key] = secret
        elif required and inline is None and path is None:
            problems.add(section_key, f"{name}_file is required (or set {env_name})")
    return found


def _read_secret_file(path: str, key: Key, problems: Problems) -> Secret | None:
    if not path.startswith("/"):
        problems.add(key, f"{path!r} is a relative path; use an absolute path")
        return None
    try:
        value = read_small_file(path, MAX_SECRET_BYTES, "secret file").decode("utf-8").strip()
    except NotReadable as exc:
        hint = "; a token is a line of text" if "larger than" in str(exc) else ""
        problems.add(key, f"{exc}{hint}")
        return None
    except UnicodeDecodeError:  # its message quotes a byte of the secret
        problems.add(key, f"secret file {path} is not UTF-8 text (not shown)")
        return None
    except OSError as exc:
        problems.add(key, f"cannot read secret file {path}: {exc.strerror or exc}")
        return None
    if not value:
        problems.add(key, f"secret file {path} is empty")
        return None
    if _not_one_line(value):
        problems.add(key, f"secret file {path} {_NOT_ONE_LINE}")
        return None
    return Secret(value, file=path)


# A token goes into an HTTP header, which holds visible ASCII only: a line break there is
# refused by the HTTP client with an error that quotes the whole value into the report and the
# logs; a non-ASCII character made building the client raise (exit 4 on every pass).
_NOT_ONE_LINE = ("holds a line break, a control character or a non-ASCII character; a token "
                 "is one line of ASCII text (not shown)")


def _not_one_line(value: str) -> bool:
    return not all(" " <= ch <= "~" for ch in value)
