"""The JSON Schema half of validation: one schema (``config_schema.json``) checked over the
merged data, each error turned into a message with its key path; numbers also finite, and the
allowed range named whenever a number is out of it."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterator
from importlib import resources
from typing import Any

# types-jsonschema may or may not be installed; either way mypy stays quiet.
from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]
from jsonschema.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    ValidationError,
)

from symlinkd.config_checks import Key, Problems, describe_type, holds_secret


def config_schema() -> dict[str, Any]:
    text = resources.files("symlinkd").joinpath("config_schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_at(schema: dict[str, Any], key: Key) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in key:
        node = _deref(schema, node)
        if node is None:
            return None
        if isinstance(part, int):
            node = node.get("items")
        else:
            props = node.get("properties", {})
            extra = node.get("additionalProperties")
            node = props.get(part, extra if isinstance(extra, dict) else None)
    return _deref(schema, node)


def _deref(root: dict[str, Any], node: dict[str, Any] | None) -> dict[str, Any] | None:
    while node is not None and "$ref" in node:
        ref = node["$ref"].removeprefix("#/$defs/")
        node = {**root["$defs"][ref], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def validate_schema(data: dict[str, Any], problems: Problems) -> None:
    schema = config_schema()
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        if isinstance(error.instance, float) and not math.isfinite(error.instance):
            continue  # _check_finite says it once, for nan too (which passes every comparison)
        for key, message in _describe(error):
            problems.add(key, message)
    _check_finite(data, (), schema, problems)


def _check_finite(node: Any, key: Key, schema: dict[str, Any], problems: Problems) -> None:
    """``.inf`` and ``.nan`` are YAML floats; nan passes every minimum and maximum."""
    if isinstance(node, dict):
        for name, value in node.items():
            _check_finite(value, (*key, str(name)), schema, problems)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_finite(value, (*key, index), schema, problems)
    elif isinstance(node, float) and not math.isfinite(node):
        allowed = _allowed(schema_at(schema, key), key)
        problems.add(key, f"{node} is not a finite number" + (f"; allowed: {allowed}"
                                                              if allowed else ""))


_UNITS = ("seconds", "minutes", "days", "bytes")


def _allowed(node: dict[str, Any] | None, key: Key) -> str | None:
    """The range a number key accepts, in words: "more than 0 up to 3600 seconds"."""
    if not node or "maximum" not in node:
        return None
    name = str(key[-1]) if key else ""
    unit = next((f" {u}" for u in _UNITS if name.endswith(f"_{u}")), "")
    high = _number(node["maximum"])
    if "exclusiveMinimum" in node:
        return f"more than {_number(node['exclusiveMinimum'])} up to {high}{unit}"
    return f"{_number(node.get('minimum', 0))} to {high}{unit}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "null": "null",
               "number": "a number", "integer": "an integer", "boolean": "a boolean"}


def _describe(error: ValidationError) -> Iterator[tuple[Key, str]]:
    key: Key = tuple(error.absolute_path)
    if holds_secret(key) and error.validator not in ("additionalProperties", "required"):
        # jsonschema quotes the value; here the value may be a secret.
        got = describe_type(error.instance)
        if error.validator == "type":
            wanted = error.validator_value
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
            yield key, f"expected {words}, got {got} (not shown: this key may hold a secret)"
        else:
            yield key, (f"{got} fails {error.validator} {error.validator_value!r} "
                        "(not shown: this key may hold a secret)")
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        for extra in error.instance:
            if extra not in allowed:
                near = difflib.get_close_matches(str(extra), allowed, n=1)
                hint = (f" (did you mean {near[0]!r}?)" if near
                        else f" (allowed: {', '.join(allowed)})")
                yield (*key, extra), f"unknown key{hint}"
    elif error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        allowed_range = _allowed(error.schema, key)
        yield key, error.message + (f"; allowed: {allowed_range}" if allowed_range else "")
    elif error.validator == "required":
        yield key, error.message.replace("is a required property", "is required here")
    elif error.validator == "pattern":
        yield key, f"{error.instance!r} may hold only letters, digits, '_', '.', '-'"
    else:
        yield key, error.message
