"""Checks one HTTP request against an OpenAPI document (openapi-core), plus the contract facts
of ``SOURCES.md`` the documents do not model. Every mismatch is a string; none is fatal here,
the tests assert the list is empty."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

CONTRACTS = Path(__file__).resolve().parents[2].parent / "shared" / "contracts"


@dataclass(frozen=True)
class SeenRequest:
    method: str  # upper case
    path: str  # decoded path, no query
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)


@dataclass
class _OpenApiRequest:
    """The request shape openapi-core wants (its Request protocol)."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    body: bytes | None
    content_type: str


@cache
def load_document(name: str) -> tuple[OpenAPI, dict[str, Any]] | None:
    path = CONTRACTS / name
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    raw = yaml.load(text, Loader=yaml.CSafeLoader) if name.endswith(".yaml") else json.loads(text)
    # The Plex community document fails openapi-spec-validator (a duplicated
    # X-Plex-Client-Identifier parameter); request validation works without that check.
    return OpenAPI.from_dict(raw, config=Config(spec_validator_cls=None)), raw


def _describe(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    cause = error.__cause__
    details = getattr(cause, "schema_errors", None) or []
    if details:
        text += " [" + "; ".join(e.message for e in details) + "]"
    elif cause is not None:
        text += f" [{cause}]"
    return text


def _template_match(template: str, path: str) -> bool:
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None


@dataclass
class ContractChecker:
    """``rewrite`` maps a request to the (method, path) the document models it as, for
    documented quirks; ``extra`` adds checks of facts the document does not hold."""

    document: str
    server_url: str
    rewrite: Callable[[SeenRequest], tuple[str, str]] = lambda r: (r.method, r.path)
    body_filter: Callable[[SeenRequest, Any], tuple[Any, list[str]]] | None = None
    extra: Sequence[Callable[[SeenRequest], list[str]]] = field(default_factory=tuple)

    def check(self, request: SeenRequest) -> list[str]:
        # Facts from SOURCES.md are checked even without the documents.
        problems = [p for check in self.extra for p in check(request)]
        body = request.body or None
        if self.body_filter is not None and body is not None:
            filtered, more = self.body_filter(request, json.loads(body))
            problems += more
            body = json.dumps(filtered).encode()
        loaded = load_document(self.document)
        if loaded is None:
            return [f"{request.method} {request.path}: {p}" for p in problems]
        openapi, raw = loaded
        method, path = self.rewrite(request)
        query = ImmutableMultiDict(list(request.query))
        oa_request = _OpenApiRequest(
            host_url=self.server_url, path=path, method=method.lower(),
            parameters=RequestParameters(query=query, header=Headers(dict(request.headers))),
            body=body, content_type=request.headers.get("Content-Type", "") if body else "",
        )
        result = openapi.unmarshal_request(oa_request)
        problems += [_describe(e) for e in result.errors]
        problems += self._undeclared_query(raw, method, path, request)
        return [f"{request.method} {request.path}: {p}" for p in problems]

    def _undeclared_query(self, raw: dict[str, Any], method: str, path: str,
                          request: SeenRequest) -> list[str]:
        """openapi-core ignores query parameters the operation does not declare; a client
        sending one is still off contract."""
        for template, item in raw["paths"].items():
            if not _template_match(template, path) or method.lower() not in item:
                continue
            params = [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]
            declared = {self._resolve(raw, p).get("name") for p in params
                        if self._resolve(raw, p).get("in") == "query"}
            declared |= {"apikey"} if "apikey" in json.dumps(raw.get("security", [])) else set()
            return [f"undeclared query parameter {k!r}" for k, _ in request.query
                    if k not in declared]
        return []

    @staticmethod
    def _resolve(raw: dict[str, Any], param: dict[str, Any]) -> dict[str, Any]:
        ref = param.get("$ref")
        if not ref:
            return param
        node: Any = raw
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return dict(node)


# --- Contract facts from SOURCES.md that the documents do not model -------------------------

# Sonarr/Radarr bind command fields from the body by the command class; the document's
# CommandResource lists none of them (and says additionalProperties: false).
_IDS = {"type": "array", "items": {"type": "integer"}, "minItems": 1}
COMMAND_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "sonarr": {
        "rescanseries": {"seriesId": {"type": "integer"}},
        "refreshseries": {"seriesIds": _IDS},
        "episodesearch": {"episodeIds": _IDS},
        "seriessearch": {"seriesId": {"type": "integer"}},
    },
    "radarr": {
        "rescanmovie": {"movieId": {"type": "integer"}},
        "refreshmovie": {"movieIds": _IDS},
        "moviessearch": {"movieIds": _IDS},
    },
}


def arr_command_filter(server: str) -> Callable[[SeenRequest, Any], tuple[Any, list[str]]]:
    def split(request: SeenRequest, body: Any) -> tuple[Any, list[str]]:
        if request.path != "/api/v3/command" or not isinstance(body, dict):
            return body, []
        name = str(body.get("name", "")).lower()
        fields = COMMAND_FIELDS[server].get(name)
        if fields is None:
            return body, [f"command {body.get('name')!r} is not one symlinkd may send"]
        specific = {k: body[k] for k in fields if k in body}
        schema = {"type": "object", "properties": fields, "required": list(fields),
                  "additionalProperties": False}
        problems = [f"command body: {e.message}" for e in
                    jsonschema.Draft202012Validator(schema).iter_errors(specific)]
        return {k: v for k, v in body.items() if k not in fields}, problems

    return split


def header_equals(name: str, pattern: str) -> Callable[[SeenRequest], list[str]]:
    def check(request: SeenRequest) -> list[str]:
        value = request.headers.get(name)
        if value is None or re.fullmatch(pattern, value) is None:
            return [f"header {name} missing or not of the form {pattern!r}"]
        return []

    return check


def plex_rewrite(request: SeenRequest) -> tuple[str, str]:
    # Real clients send GET .../refresh; the community document models it as POST.
    if request.method == "GET" and _template_match("/library/sections/{id}/refresh",
                                                   request.path):
        return "POST", request.path
    # GET /library/sections is the classic listing (Sonarr, Autoscan, the older spec); the
    # post-overhaul document names the same operation (getSections) /library/sections/all.
    if request.method == "GET" and request.path == "/library/sections":
        return "GET", "/library/sections/all"
    return request.method, request.path
