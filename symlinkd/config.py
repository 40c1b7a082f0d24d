"""Loading the configuration: YAML file (``config_yaml``), then ``SYMLINKD_*`` environment
overrides, then one JSON Schema (``config_validate``) plus semantic checks (``config_checks``,
``config_paths``), every problem reported at once with its key path (borgmatic style).

Environment overrides (README, "Environment overrides"):
``SYMLINKD_<KEY>__<KEY>...=<value>``; a double underscore descends one level, names are
case-insensitive, a list item is chosen by index or (for
``mounts``) by name: ``SYMLINKD_POLICY__MAX_AGE_DAYS=30``, ``SYMLINKD_MOUNTS__ZURG__RC_URL=...``.
Values are YAML (``30``, ``true``, ``null``, ``[a, b]``, ``{k: v}``), except where the schema
wants a string: there the text is taken as is, so a token like ``0x1f`` or ``1e5`` stays a string.
"""

from __future__ import annotations

import copy
import functools
import re
import types
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from symlinkd.config_checks import (
    Key,
    Problems,
    check_semantics,
    holds_secret,
    secret_values,
)
from symlinkd.config_validate import config_schema, schema_at, validate_schema
from symlinkd.config_yaml import load_yaml, read_config_file, yaml_error
from symlinkd.redact import MASK, redact_text
from symlinkd.settings import Secret, Settings

DEFAULT_CONFIG_PATH = "/config/symlinkd.yaml"
CONFIG_ENV = "SYMLINKD_CONFIG"
ENV_PREFIX = "SYMLINKD_"
REDACTED = MASK

# Not configuration: the config path itself, logging/debug switches of the process, and the
# variables Kubernetes injects for a Service named "symlinkd" (enableServiceLinks defaults to
# true, so SYMLINKD_PORT=tcp://10.0.0.1:9090 appears in every pod of the namespace).
_NOT_CONFIG = re.compile(
    r"^SYMLINKD_(CONFIG|DEBUG|LOG_[A-Z0-9_]*|SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?"
    r"|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$"
)


def load_settings(path: str | None, env: Mapping[str, str]) -> Settings:
    """Settings from ``path`` (None: ``$SYMLINKD_CONFIG``, else the default path, which may be
    absent) and ``env``. Raises ``ConfigError`` listing every problem found."""
    problems = Problems()
    explicit = path is not None or bool(env.get(CONFIG_ENV))
    path = path if path is not None else env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    # A file that cannot be read counts as empty, so the environment is still checked and
    # every problem comes out in one go.
    document = read_config_file(path, explicit, problems)

    data = _merge(_defaults(), document)
    from_env = _apply_env(data, env, problems)
    problems.origins.update(from_env)
    problems.secrets |= secret_values(data)
    validate_schema(data, problems)
    secrets = check_semantics(data, from_env, problems)
    problems.raise_if_any()
    for key, secret in secrets.items():
        _set(data, key, secret)
    settings: Settings = _build(Settings, _strip_secret_files(data))
    return settings


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings as plain data that loads back as the same settings: a secret read from a file
    appears as its ``*_file`` path, one from the environment not at all (``secrets_not_shown``
    names it), an unset one not at all; URL credentials are ``<redacted>`` (the one redaction
    rule), the only thing that does not load back as it was."""
    data: dict[str, Any] = _to_data(settings, redact=True)
    return data


def effective_config_text(settings: Settings) -> str:
    """``effective_config`` as YAML, after comments naming what it leaves out."""
    lines = [f"# {key}: from {origin} (not shown; set it there again to use this output)"
             for key, origin in secrets_not_shown(settings)]
    text = yaml.safe_dump(effective_config(settings), sort_keys=False, allow_unicode=True)
    if REDACTED in text:
        lines.append(f"# URL credentials are shown as {REDACTED}: put them back to use this "
                     "output")
    return "".join(f"{line}\n" for line in lines) + text


def secrets_not_shown(settings: Settings) -> list[tuple[str, str]]:
    """(key path, where it came from) of each secret that ``effective_config`` cannot name by a
    file: those given as values (environment variables)."""
    found: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if is_dataclass(value) and not isinstance(value, type):
            for f in fields(value):
                walk(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
        elif isinstance(value, Secret) and value.file is None:
            found.append((key, value.env or "a value given in code"))

    walk(settings, "")
    return found


# --- environment ------------------------------------------------------------------------------


def _apply_env(data: dict[str, Any], env: Mapping[str, str], problems: Problems) -> dict[Key, str]:
    """Writes each ``SYMLINKD_*`` override into ``data``; returns the key paths it set, with the
    variable that set them (error messages name the variable)."""
    schema = config_schema()
    origins: dict[Key, str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or _NOT_CONFIG.match(name):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if not all(parts):
            problems.add((), f"{name}: empty key segment (use one '__' between keys)")
            continue
        key = _resolve_env_key(data, parts, name, problems)
        if key is None:
            continue
        value = _env_value(env[name], schema_at(schema, key), name, problems)
        if holds_secret(key):
            # `SYMLINKD_NOTIFY__PLEX=<token>` or `={<token>: 1}`: the text and every string in
            # it that is not a key name of ours may be the secret.
            problems.secrets.add(env[name])
            if value is not _INVALID:
                problems.secrets |= _strings(value) - _key_names()
        if value is _INVALID:
            continue
        if not _set(data, key, value):
            problems.add(key[:-1], f"{name}: cannot set a key inside a non-mapping value")
            continue
        origins[key] = name
    return origins


@functools.cache
def _key_names() -> frozenset[str]:
    """Every key name the schema knows (``url``, ``token_file``, ...): never a secret."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}) if isinstance(node.get("properties"), dict)
                         else ())
            for child in node.values():
                walk(child)

    walk(config_schema())
    return frozenset(names)


def _strings(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {s for k, v in value.items() for s in (*_strings(k), *_strings(v))}
    if isinstance(value, list):
        return {s for v in value for s in _strings(v)}
    return {value} if isinstance(value, str) else set()


def _resolve_env_key(
    data: dict[str, Any], parts: list[str], name: str, problems: Problems
) -> Key | None:
    key: list[str | int] = []
    node: Any = data
    for part in parts:
        if isinstance(node, list):
            index = _list_index(node, part)
            if index is None:
                problems.add(tuple(key), f"{name}: no item {part!r} (use an index 0..{len(node)} "
                                         "or a mount name)")
                return None
            key.append(index)
            node = node[index] if index < len(node) else {}
        else:
            key.append(part)
            node = node.get(part) if isinstance(node, dict) else None
            node = {} if node is None else node
    return tuple(key)


def _list_index(items: list[Any], part: str) -> int | None:
    if part.isdigit():
        index = int(part)
        return index if index <= len(items) else None  # len(items): append a new item
    for index, item in enumerate(items):
        if isinstance(item, dict) and str(item.get("name", "")).lower().replace("-", "_") == part:
            return index
    return None


_INVALID = object()


def _env_value(text: str, schema: dict[str, Any] | None, name: str, problems: Problems) -> Any:
    types = (schema or {}).get("type", ())
    types = {types} if isinstance(types, str) else set(types)
    if "string" in types and not types & {"number", "integer", "boolean", "object", "array"}:
        if "null" in types and text.strip() in ("", "null", "~"):
            return None
        return text
    try:
        return load_yaml(text) if text.strip() else None
    except yaml.YAMLError as exc:
        problems.add((), f"{name}: value is not valid YAML: {yaml_error(exc)}")
        return _INVALID


# --- data <-> settings ------------------------------------------------------------------------


_SECRET_KEYS = {
    "token": "token_file", "api_key": "api_key_file", "webhook_token": "webhook_token_file",
}


def _defaults() -> dict[str, Any]:
    data = _to_data(Settings(), redact=False)
    assert isinstance(data, dict)
    return data


def _to_data(value: Any, *, redact: bool) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if f.name == "path_map":
                out[f.name] = dict(item)
            elif f.name.endswith("url") and isinstance(item, str) and redact:
                out[f.name] = redact_text(item)
            elif f.name in _SECRET_KEYS and redact:
                # by its file, or not at all: `webhook_token: <redacted>` would not load back
                if isinstance(item, Secret) and item.file is not None:
                    out[_SECRET_KEYS[f.name]] = item.file
            else:
                out[f.name] = _to_data(item, redact=redact)
        return out
    if isinstance(value, Secret):
        return REDACTED if redact else value.reveal()  # not reached for settings' own secrets
    if isinstance(value, tuple | list):
        return [_to_data(v, redact=redact) for v in value]
    return value


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value is None and isinstance(out.get(key), dict):
            continue  # `daemon:` with every sub-key commented out means "the defaults"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set(data: dict[str, Any], key: Key, value: Any) -> bool:
    node: Any = data
    for part in key[:-1]:
        if isinstance(node, dict):
            if not isinstance(node.get(part), dict | list):
                node[part] = {}
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int):
            if part == len(node):
                node.append({})
            node = node[part]
        else:
            return False
    last = key[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int):
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    else:
        return False
    return True


def _strip_secret_files(data: dict[str, Any]) -> dict[str, Any]:
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if k not in _SECRET_KEYS.values()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    stripped: dict[str, Any] = walk(data)
    return stripped


def _build(cls: type[Any], data: Mapping[str, Any]) -> Any:
    hints = get_type_hints(cls)
    kwargs = {f.name: _convert(hints[f.name], data[f.name]) for f in fields(cls) if f.name in data}
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    origin = get_origin(hint)
    if value is None:
        return None
    if origin is Union or origin is types.UnionType:
        inner = [a for a in get_args(hint) if a is not type(None)]
        return _convert(inner[0], value)
    if hint is Secret:
        return value if isinstance(value, Secret) else Secret(str(value))
    if is_dataclass(hint):
        return _build(hint, value)  # type: ignore[arg-type]
    if origin is tuple:
        args = get_args(hint)
        if isinstance(value, dict):  # path_map
            return tuple((str(k), str(v)) for k, v in value.items())
        return tuple(_convert(args[0], v) for v in value)
    if hint is float:
        return float(value)
    return value

