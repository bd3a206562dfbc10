"""The Anthropic API's wire contract as the installed SDK states it, checked strictly.

The fake Anthropic (``tests/fakes/anthropic.py``) hands every request it receives and every
response it sends to this module. Requests are checked against the SDK's own request
TypedDicts (``anthropic.types.MessageCreateParams`` and, through it, every message, block,
tool, container and ``cache_control`` param; ``FileUploadParams``; ``FileListParams``);
responses against its response models (``Message``, each ``RawMessageStreamEvent``,
``FileMetadata``, the file list page, ``DeletedFile``, ``MessageTokensCount``,
``ErrorResponse``).

Unlike the SDK itself (whose models keep unknown keys silently in ``model_extra`` and whose
TypedDicts are not checked at run time), the check here is strict at every level: a key the
type does not declare, a missing required key, a value outside a ``Literal``, a block whose
``type`` tag no variant of a union has, a wrong JSON type — each is a problem, reported
pydantic-style with its path (``messages.0.content.1.container_upload.file: Extra inputs are
not permitted``), which is also how the real API words them.

Every violation found is kept in :data:`RECORDED`; ``tests/conftest.py`` fails a test that
left one behind unless the test declares it expects one.
"""

from __future__ import annotations

import io
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin, get_type_hints

import anthropic.types as api
import anthropic.types.beta as beta_api
import pydantic
from anthropic.pagination import AsyncPageCursor
from anthropic.types.shared.error_details import ErrorDetails
from anthropic.types.shared.error_response import ErrorResponse
from typing_extensions import ReadOnly, is_typeddict

__all__ = [
    "RECORDED",
    "Violation",
    "conforms",
    "problems",
    "request_problems",
    "response_problems",
    "stream_event_problems",
    "take_recorded",
]

# --------------------------------------------------------------------------------------------
# Violations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """A request or response that the SDK's types reject."""

    direction: Literal["request", "response"]
    endpoint: str  # e.g. "POST /v1/messages" or "POST /v1/messages (stream event content_block_start)"
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.direction} {self.endpoint}: " + "; ".join(self.problems)


#: Every violation any fake in this process recorded since the last :func:`take_recorded`.
RECORDED: list[Violation] = []


def take_recorded() -> list[Violation]:
    """The violations recorded so far, clearing the record."""
    taken = list(RECORDED)
    RECORDED.clear()
    return taken


def verdict(found: Sequence[Violation], *, expected: bool) -> str | None:
    """Why a test that recorded ``found`` fails (None: it passes).

    A test must record no violation, unless it ``expected`` some: then it must record at least one.
    """
    if expected:
        return None if found else "expected a conformance violation, but every request and response conformed"
    if not found:
        return None
    listing = "\n".join(f"  - {violation}" for violation in found)
    return f"{len(found)} Anthropic conformance violation(s) (tests/fakes/anthropic_contract.py):\n{listing}"


# --------------------------------------------------------------------------------------------
# The strict checker
# --------------------------------------------------------------------------------------------

_NoneType = type(None)
_SEQUENCES = (list, Sequence, Iterable, tuple)
_MAPPINGS = (dict, Mapping)
_QUALIFIERS = (Required, NotRequired, ReadOnly)


@dataclass(frozen=True)
class _Field:
    annotation: Any
    required: bool


# id(annotation) → (annotation, unwrapped): the SDK's types are few and live as long as the
# process; every request walks them again, so each is unwrapped once (typing's get_origin is slow).
_UNWRAPPED: dict[int, tuple[Any, Any]] = {}


def _unwrap(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and ``Required``/``NotRequired``/``ReadOnly``."""
    known = _UNWRAPPED.get(id(annotation))
    if known is not None and known[0] is annotation:
        return known[1]
    unwrapped = _unwrapped(annotation)
    _UNWRAPPED[id(annotation)] = (annotation, unwrapped)
    return unwrapped


def _unwrapped(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is not None and origin in _QUALIFIERS:
            annotation = get_args(annotation)[0]
        elif hasattr(annotation, "__metadata__"):  # Annotated[X, ...]
            annotation = annotation.__origin__
        else:
            return annotation


def _required_marker(annotation: Any) -> bool | None:
    """True for ``Required[...]``, False for ``NotRequired[...]``, None when unmarked."""
    while True:
        origin = get_origin(annotation)
        if origin is Required:
            return True
        if origin is NotRequired:
            return False
        if origin is ReadOnly:
            annotation = get_args(annotation)[0]
        elif hasattr(annotation, "__metadata__"):
            annotation = annotation.__origin__
        else:
            return None


@cache
def _typeddict_fields(td: Any) -> dict[str, _Field]:
    """The keys of a TypedDict, inherited ones included, each with its type and whether it is required.

    Worked out from the annotations rather than ``__required_keys__``: with postponed
    annotations the SDK's ``Required[...]`` are strings the TypedDict machinery cannot see,
    so its ``__required_keys__`` is wrong (empty for ``MessageCreateParamsBase``).
    """
    fields: dict[str, _Field] = {}
    inherited: dict[str, Any] = {}
    for base in getattr(td, "__orig_bases__", ()):
        if is_typeddict(base):
            fields.update(_typeddict_fields(base))
            inherited.update(base.__annotations__)
    hints = get_type_hints(td, include_extras=True)
    for key, raw in td.__annotations__.items():
        if key in inherited and inherited[key] == raw:
            continue
        marker = _required_marker(hints[key])
        fields[key] = _Field(hints[key], bool(td.__total__) if marker is None else marker)
    return fields


@cache
def _model_fields(model: type[pydantic.BaseModel]) -> dict[str, _Field]:
    """The JSON keys of an SDK response model (by alias), each with its type and whether it is required."""
    fields: dict[str, _Field] = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        fields[info.alias or name] = _Field(annotation, info.is_required())
    return fields


def _fields_of(annotation: Any) -> dict[str, _Field] | None:
    if is_typeddict(annotation):
        return _typeddict_fields(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return _model_fields(annotation)
    return None


@cache
def _tags(annotation: Any, key: str = "type") -> tuple[str, ...] | None:
    """The values of ``key`` an object type accepts (its ``Literal`` tag), or None if it has none."""
    fields = _fields_of(_unwrap(annotation))
    if fields is None or key not in fields:
        return None
    tag = _unwrap(fields[key].annotation)
    if get_origin(tag) is not Literal:
        return None
    return tuple(str(v) for v in get_args(tag))


def _at(where: str) -> str:
    return where or "body"


def _join(where: str, key: str | int) -> str:
    return f"{where}.{key}" if where else str(key)


def _expected(values: Sequence[Any]) -> str:
    quoted = [repr(v) if isinstance(v, str) else json.dumps(v) for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _json_kind(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def problems(value: Any, annotation: Any, where: str = "") -> list[str]:
    """Everything about the JSON ``value`` that the SDK type ``annotation`` does not allow.

    Empty when it conforms. Unknown keys are refused at every level, in TypedDicts and in
    response models alike.
    """
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if annotation is Any or annotation is object:
        return []
    if annotation is None or annotation is _NoneType:
        return [] if value is None else [f"{_at(where)}: Input should be null, got {_json_kind(value)}"]
    if origin is Union or origin is types.UnionType:
        return _union_problems(value, get_args(annotation), where)
    if origin is Literal:
        allowed = get_args(annotation)
        if any(value == v and type(value) is type(v) for v in allowed):
            return []
        return [f"{_at(where)}: Input should be {_expected(allowed)}"]
    if annotation is str:
        return [] if isinstance(value, str) else [f"{_at(where)}: Input should be a valid string"]
    if annotation is bool:
        return [] if isinstance(value, bool) else [f"{_at(where)}: Input should be a valid boolean"]
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{_at(where)}: Input should be a valid integer"]
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{_at(where)}: Input should be a valid number"]
    if annotation is datetime:
        return _datetime_problems(value, where)
    if origin in _SEQUENCES or annotation in (list, tuple):
        if not isinstance(value, list):
            return [f"{_at(where)}: Input should be a valid list"]
        args = get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length, a type per position
            if len(value) != len(args):
                return [f"{_at(where)}: Input should have {len(args)} items, got {len(value)}"]
            return [
                p
                for k, (element, item) in enumerate(zip(value, args, strict=True))
                for p in problems(element, item, _join(where, k))
            ]
        item = args[0] if args else Any
        return [p for k, element in enumerate(value) for p in problems(element, item, _join(where, k))]
    if origin in _MAPPINGS or annotation is dict:
        if not isinstance(value, dict):
            return [f"{_at(where)}: Input should be a valid dictionary"]
        args = get_args(annotation)
        item = args[1] if len(args) == 2 else Any
        return [p for k, element in value.items() for p in problems(element, item, _join(where, k))]
    fields = _fields_of(annotation)
    if fields is not None:
        return _object_problems(value, fields, where)
    if annotation in (bytes, bytearray) or origin is type or _is_file_like(annotation):
        return [f"{_at(where)}: {annotation!r} cannot be sent as JSON"]
    raise TypeError(f"anthropic_contract: no rule for the SDK annotation {annotation!r} (at {where or 'top level'})")


def _is_file_like(annotation: Any) -> bool:
    """Files the SDK uploads as multipart parts (``FileTypes``): never a JSON value."""
    target = get_origin(annotation) or annotation
    return target is typing.IO or (isinstance(target, type) and issubclass(target, io.IOBase | os.PathLike))


def _datetime_problems(value: Any, where: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{_at(where)}: Input should be a valid datetime string"]
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return [f"{_at(where)}: Input should be a valid RFC 3339 datetime, got {value!r}"]
    return []


def _object_problems(value: Any, fields: Mapping[str, _Field], where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{_at(where)}: Input should be a valid dictionary or object, got {_json_kind(value)}"]
    found = [f"{_join(where, key)}: Extra inputs are not permitted" for key in value if key not in fields]
    for key, spec in fields.items():
        if key not in value:
            if spec.required:
                found.append(f"{_join(where, key)}: Field required")
            continue
        found += problems(value[key], spec.annotation, _join(where, key))
    return found


def _union_problems(value: Any, members: Sequence[Any], where: str) -> list[str]:
    """Any member will do. An object is only tried against the members its tag selects: its
    ``type`` (named in the path, as pydantic does for discriminated unions), or another key
    every object member has a ``Literal`` for (a message's ``role``)."""
    members = _flattened(members)
    candidates: list[tuple[Any, str]] = [(member, where) for member in members]
    if isinstance(value, dict):
        objects = [m for m in members if _fields_of(_unwrap(m)) is not None]
        for key in ("type", "role"):
            if not isinstance(value.get(key), str):
                continue
            tagged = [(member, _tags(member, key)) for member in members]
            if key == "type" and all(tags is None for _, tags in tagged):
                continue
            if key != "type" and any(_tags(m, key) is None for m in objects):
                continue
            tag = value[key]
            named = key == "type" and sum(tags is not None for _, tags in tagged) > 1
            candidates = [(m, _join(where, tag) if named else where) for m, tags in tagged if tags and tag in tags]
            candidates += [(m, where) for m, tags in tagged if tags is None and _accepts_objects(m)]
            if not candidates:
                known = sorted({t for _, tags in tagged for t in tags or ()})
                return [
                    f"{_at(where)}: Input tag {tag!r} found using {key!r} does not match any of the expected tags: "
                    + ", ".join(repr(t) for t in known)
                ]
            break
    best: list[str] | None = None
    for member, path in candidates:
        found = problems(value, member, path)
        if not found:
            return []
        if best is None or _depth(found) > _depth(best):
            best = found
    return best or [f"{_at(where)}: Input matches no accepted type"]


def _flattened(members: Sequence[Any]) -> list[Any]:
    """Union members, with unions nested in ``Annotated`` (which typing does not flatten) spliced in."""
    flat: list[Any] = []
    for member in members:
        bare = _unwrap(member)
        if get_origin(bare) is Union or get_origin(bare) is types.UnionType:
            flat += _flattened(get_args(bare))
        else:
            flat.append(member)
    return flat


def _accepts_objects(annotation: Any) -> bool:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if annotation in (Any, object, dict) or origin in _MAPPINGS:
        return True
    if origin is Union or origin is types.UnionType:
        return any(_accepts_objects(m) for m in get_args(annotation))
    return _fields_of(annotation) is not None


def _depth(found: Sequence[str]) -> int:
    """How deep into the value the first problem is (the best-matching union member gets furthest)."""
    return found[0].split(":", 1)[0].count(".") + 1 if found else 0


def conforms(value: Any, annotation: Any) -> bool:
    return not problems(value, annotation)


def annotations_under(root: Any) -> list[Any]:
    """Every annotation reachable from ``root`` (through fields, unions, lists, ...), each once."""
    seen: dict[int, Any] = {}
    pending = [root]
    while pending:
        annotation = pending.pop()
        if id(annotation) in seen:
            continue
        seen[id(annotation)] = annotation
        bare = _unwrap(annotation)
        fields = _fields_of(bare)
        if fields is not None:
            pending += [spec.annotation for spec in fields.values()]
        elif get_origin(bare) is not Literal:
            pending += [arg for arg in get_args(bare) if arg is not Ellipsis]
        if bare is not annotation:
            pending.append(bare)
    return list(seen.values())


# --------------------------------------------------------------------------------------------
# Endpoints: which SDK type each request and response must satisfy
# --------------------------------------------------------------------------------------------

#: SDK params sent as headers (``anthropic-workspace-id``, ``anthropic-beta``...), never in the body.
HEADER_PARAMS = frozenset({"workspace_id", "user_profile_id", "betas"})

Route = Literal["messages", "count_tokens", "upload", "list", "retrieve", "download", "delete", "model"]
_ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("POST", re.compile(r"/v1/messages"), "messages"),
    ("POST", re.compile(r"/v1/messages/count_tokens"), "count_tokens"),
    ("POST", re.compile(r"/v1/files"), "upload"),
    ("GET", re.compile(r"/v1/files"), "list"),
    ("GET", re.compile(r"/v1/files/[^/]+"), "retrieve"),
    ("GET", re.compile(r"/v1/files/[^/]+/content"), "download"),
    ("DELETE", re.compile(r"/v1/files/[^/]+"), "delete"),
    ("GET", re.compile(r"/v1/models/[^/]+"), "model"),
]


def route(method: str, path: str) -> Route | None:
    """Which SDK call a request is (None: none the bot could make)."""
    return next((name for m, pattern, name in _ROUTES if m == method and pattern.fullmatch(path)), None)


def _body_fields(td: Any) -> dict[str, _Field]:
    return {k: f for k, f in _typeddict_fields(td).items() if k not in HEADER_PARAMS}


def _params_problems(body: Any, ga: Any, beta: Any | None, betas: Sequence[str]) -> list[str]:
    """Against the GA params; a request with an ``anthropic-beta`` header may use the beta params."""
    found = _object_problems(body, _body_fields(ga), "")
    if found and beta is not None and betas and not _object_problems(body, _body_fields(beta), ""):
        return []
    return found


def _messages_params(body: Any) -> tuple[Any, Any]:
    streaming = isinstance(body, dict) and body.get("stream") is True
    if streaming:
        return api.message_create_params.MessageCreateParamsStreaming, (
            beta_api.message_create_params.MessageCreateParamsStreaming
        )
    return api.message_create_params.MessageCreateParamsNonStreaming, (
        beta_api.message_create_params.MessageCreateParamsNonStreaming
    )


def _coerce_text(text: str, annotation: Any) -> Any:
    """A form field or query value (always text on the wire) as the JSON value its type means."""
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        for member in get_args(annotation):
            coerced = _coerce_text(text, member)
            if conforms(coerced, member):
                return coerced
        return text
    if annotation is int and re.fullmatch(r"-?\d+", text):
        return int(text)
    if annotation in (float,) and re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    if annotation is bool and text in ("true", "false"):
        return text == "true"
    if origin in _SEQUENCES:
        return [_coerce_text(part, get_args(annotation)[0]) for part in text.split(",") if part]
    return text


def _is_list(annotation: Any) -> bool:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return any(_is_list(m) for m in get_args(annotation))
    return origin in _SEQUENCES


def _text_fields_problems(
    values: Mapping[str, Sequence[str]], td: Any, skip: frozenset[str] = frozenset()
) -> list[str]:
    """Query parameters or form fields (text, possibly repeated; ``ids[]`` is ``ids``) against a TypedDict."""
    fields = {k: f for k, f in _body_fields(td).items() if k not in skip} if td is not None else {}
    found: list[str] = []
    for raw_key, texts in values.items():
        key = raw_key.removesuffix("[]")
        spec = fields.get(key)
        if spec is None:
            found.append(f"{raw_key}: Extra inputs are not permitted")
        elif _is_list(spec.annotation):
            items = [item for text in texts for item in _coerce_text(text, spec.annotation)]
            found += problems(items, spec.annotation, key)
        elif len(texts) != 1:
            found.append(f"{raw_key}: Input should be one value, got {len(texts)}")
        else:
            found += problems(_coerce_text(texts[0], spec.annotation), spec.annotation, key)
    return found


def request_problems(
    method: str,
    path: str,
    *,
    query: Mapping[str, Sequence[str]],
    betas: Sequence[str] = (),
    body: Any = None,
    form: Mapping[str, Sequence[str]] | None = None,
    file_parts: Sequence[str] = (),
) -> list[str]:
    """What about one request the SDK's request types don't allow (empty: it conforms).

    ``body`` is the parsed JSON body, ``form``/``file_parts`` a multipart body's text fields and
    the names of its file parts.
    """
    kind = route(method, path)
    if kind is None:
        return [f"{method} {path}: not an endpoint of the Anthropic API the SDK knows"]
    found = _text_fields_problems(query, api.FileListParams if kind == "list" else None)
    if kind == "messages":
        ga, beta = _messages_params(body)
        found += _params_problems(body, ga, beta, betas)
    elif kind == "count_tokens":
        found += _params_problems(body, api.MessageCountTokensParams, beta_api.MessageCountTokensParams, betas)
    elif kind == "upload":
        found += _text_fields_problems(form or {}, api.FileUploadParams, skip=frozenset({"file"}))
        found += [f"{name}: Extra inputs are not permitted" for name in file_parts if name != "file"]
        if "file" not in file_parts:
            found.append("file: Field required")
    return found


def _error_problems(body: Any) -> list[str]:
    """``ErrorResponse``, whose ``error`` may also carry ``details`` (the SDK reads
    ``error.details`` as :data:`ErrorDetails`: anthropic/_exceptions.py ``APIStatusError``)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "details" in error:
        details = error["details"]
        body = {**body, "error": {k: v for k, v in error.items() if k != "details"}}
        return problems(body, ErrorResponse) + problems(details, ErrorDetails, "error.details")
    return problems(body, ErrorResponse)


def response_problems(method: str, path: str, status: int, body: Any, *, betas: Sequence[str] = ()) -> list[str]:
    """What about one JSON response the SDK's response models don't declare (empty: it conforms)."""
    if status >= 400:
        return _error_problems(body)
    models: dict[Route, tuple[Any, Any]] = {
        "messages": (api.Message, beta_api.BetaMessage),
        "count_tokens": (api.MessageTokensCount, beta_api.BetaMessageTokensCount),
        "upload": (api.FileMetadata, None),
        "list": (AsyncPageCursor[api.FileMetadata], None),
        "retrieve": (api.FileMetadata, None),
        "delete": (api.DeletedFile, None),
        "model": (api.ModelInfo, None),
    }
    kind = route(method, path)
    if kind == "download":
        return []  # the file's own bytes, whatever their type
    if kind is None:
        return [f"{method} {path}: no SDK model for a JSON response here"]
    model, beta_model = models[kind]
    found = problems(body, model)
    if found and beta_model is not None and betas and conforms(body, beta_model):
        return []
    return found


def stream_event_problems(event: str, data: Any, *, betas: Sequence[str] = ()) -> list[str]:
    """One server-sent event of a streamed Messages response.

    The SDK skips ``ping`` events and raises on ``error`` events (anthropic/_streaming.py);
    every other event's data is a ``RawMessageStreamEvent`` whose ``type`` is the event name.
    """
    if event == "ping":
        return problems(data, _Ping)
    if event == "error":
        return _error_problems(data)
    found = problems(data, api.RawMessageStreamEvent)
    if found and betas and conforms(data, beta_api.BetaRawMessageStreamEvent):
        found = []
    if isinstance(data, dict) and data.get("type") != event:
        found.append(f"event {event!r} carries data of type {data.get('type')!r}")
    return found


class _Ping(pydantic.BaseModel):
    """``{"type": "ping"}`` (the SDK skips these events unread)."""

    type: Literal["ping"]
