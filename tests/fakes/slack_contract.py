"""Conformance: every Web API call and Block Kit payload the fake receives, checked.

Two checks run inside the fake Slack's dispatcher (``WebApi.call``):

* ``check_arguments(method, params)`` compares a call's arguments with the explicit
  parameters of the slack_sdk method that makes it (``chat.postMessage`` →
  ``AsyncWebClient.chat_postMessage``): the method must exist, its required parameters
  must be present, and no argument may be one the method does not name. Scalar
  parameters (``str``/``int``/``bool``) must arrive as slack_sdk sends them. A mismatch
  raises ``ApiError("invalid_arguments")`` with Slack's ``response_metadata.messages``.
* Block Kit payloads are validated by ``slack_blocks.validate_blocks`` wherever the fake
  reads blocks; a rejection is reported here too (``record``).

Every mismatch is also recorded in ``CONFORMANCE`` (one log per test process). The
autouse ``slack_conformance`` fixture in tests/conftest.py empties it before a test and
fails the test at teardown if anything was recorded that the test did not ``take()``.

What arrives is not always what the Python method was given, and the check allows for
exactly these transformations of slack_sdk 3.x (see ``slack_sdk/web/async_client.py``
and ``internal_utils.py``):

* ``None`` arguments are dropped, so optional parameters may be absent;
* a client built with ``team_id=`` (Bolt's per-request clients are) adds ``team_id`` to
  every call (``SDK_DEFAULT_PARAMS``);
* ``token`` travels in the ``Authorization`` header (the fake strips it before this
  check), and ``apps_connections_open(app_token=...)`` sends its ``app_token`` as that
  token (``TRANSPORT_ONLY``);
* in form/query encodings booleans become ``"1"``/``"0"`` and numbers strings; in JSON
  bodies they stay native; lists of ids are joined by commas and ``blocks``/``files``
  JSON-encoded — those composite values are checked by the method handlers, not here;
* some arguments Slack documents reach a method only through ``**kwargs``
  (``files_upload_v2(blocks=...)`` passes them on to ``files.completeUploadExternal``):
  ``DOCUMENTED_EXTRAS`` names each, with its doc. Everything else a method's ``**kwargs``
  would let through is a violation: the bot gets no help from the SDK there.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.web.async_client import AsyncWebClient

JSON = dict[str, Any]
Kind = Literal["arguments", "blocks"]
Scalar = Literal["str", "int", "bool", "other"]

#: parameters slack_sdk turns into the request's token instead of an argument
TRANSPORT_ONLY: dict[str, frozenset[str]] = {
    "apps.connections.open": frozenset({"app_token"}),
}

#: arguments slack_sdk adds to every call of a client built with them (``default_params``
#: in slack_sdk/web/async_base_client.py); Bolt builds each request's client with
#: ``team_id=`` (slack_bolt/app/async_app.py, ``client_per_request``)
SDK_DEFAULT_PARAMS: dict[str, Scalar] = {"team_id": "str"}

#: arguments Slack's reference documents that slack_sdk passes through ``**kwargs``
DOCUMENTED_EXTRAS: dict[str, frozenset[str]] = {
    # docs: reference/methods/files.completeUploadExternal — "blocks: A JSON-based array of
    # structured rich text blocks, presented as a URL-encoded string" (files_upload_v2
    # forwards its **kwargs to files_completeUploadExternal, which names no blocks).
    "files.completeUploadExternal": frozenset({"blocks"}),
}

BOOL_STRINGS = frozenset({"0", "1", "true", "false"})


@dataclass(frozen=True)
class Violation:
    """A call or payload Slack would refuse (or that slack_sdk could not have sent)."""

    kind: Kind
    method: str
    problems: tuple[str, ...]

    def __str__(self) -> str:
        where = self.method or "a Block Kit payload"
        return f"{self.kind} of {where}: {'; '.join(self.problems)}"


class ConformanceLog:
    """The violations recorded since the last ``clear``."""

    def __init__(self) -> None:
        self._violations: list[Violation] = []

    def record(self, kind: Kind, method: str, problems: list[str]) -> None:
        self._violations.append(Violation(kind, method, tuple(problems)))

    def clear(self) -> None:
        self._violations.clear()

    def take(self) -> list[Violation]:
        """Hand over (and forget) what was recorded: a test declares it expected these."""
        taken = list(self._violations)
        self._violations.clear()
        return taken

    def __len__(self) -> int:
        return len(self._violations)


#: the process-wide log the fake records into and the autouse fixture checks
CONFORMANCE = ConformanceLog()


class ArgumentsRejected(Exception):
    """The call's arguments do not match the slack_sdk method; ``problems`` say how."""

    def __init__(self, error: str, problems: list[str]) -> None:
        super().__init__(f"{error}: {'; '.join(problems)}")
        self.error = error
        self.problems = problems


@dataclass(frozen=True)
class MethodSignature:
    python_name: str
    parameters: dict[str, Scalar]  # every argument that may arrive, with its scalar kind
    required: frozenset[str]


def python_name(method: str) -> str:
    """``chat.postMessage`` → ``chat_postMessage`` (slack_sdk's naming rule)."""
    return method.replace(".", "_")


@functools.cache
def signature_for(method: str) -> MethodSignature | None:
    """The arguments the slack_sdk method for ``method`` may send, or None if it has none."""
    name = python_name(method)
    function = getattr(AsyncWebClient, name, None)
    if function is None or name.startswith("_") or not inspect.iscoroutinefunction(function):
        return None
    hints = typing.get_type_hints(function)
    hidden = TRANSPORT_ONLY.get(method, frozenset())
    parameters: dict[str, Scalar] = {}
    required: set[str] = set()
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name == "self" or parameter.kind is inspect.Parameter.VAR_KEYWORD or parameter.name in hidden:
            continue
        parameters[parameter.name] = scalar_kind(hints.get(parameter.name))
        if parameter.default is inspect.Parameter.empty:
            required.add(parameter.name)
    for extra in DOCUMENTED_EXTRAS.get(method, frozenset()):
        parameters.setdefault(extra, "other")
    for default, kind in SDK_DEFAULT_PARAMS.items():
        parameters.setdefault(default, kind)
    return MethodSignature(name, parameters, frozenset(required))


def scalar_kind(annotation: Any) -> Scalar:
    """``str``/``int``/``bool`` for parameters slack_sdk sends unchanged, else ``other``."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] if _is_union(annotation) else [annotation]
    if len(options) == 1 and options[0] in (str, int, bool):
        return typing.cast(Scalar, options[0].__name__)
    return "other"


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def argument_problems(method: str, params: JSON) -> list[str]:
    """How the arguments of a ``method`` call differ from what slack_sdk could send."""
    signature = signature_for(method)
    if signature is None:
        return [f"slack_sdk's AsyncWebClient has no method {python_name(method)}() for {method}"]
    problems = [
        f"[ERROR] missing required field: {name} (required by {signature.python_name})"
        for name in sorted(signature.required - params.keys())
    ]
    for name, value in params.items():
        kind = signature.parameters.get(name)
        if kind is None:
            problems.append(f"[ERROR] unexpected argument: {name} ({signature.python_name} names no such parameter)")
        elif not _fits(kind, value):
            problems.append(f"[ERROR] {name} must be {kind}, got {type(value).__name__} {value!r:.60}")
    return problems


def _fits(kind: Scalar, value: Any) -> bool:
    """Whether ``value`` is how slack_sdk sends a ``kind`` argument (JSON body or form)."""
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit()
        )
    if kind == "bool":
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in BOOL_STRINGS)
    return True


def check_arguments(method: str, params: JSON, *, log: ConformanceLog = CONFORMANCE) -> None:
    """Record and raise ``ArgumentsRejected`` (``invalid_arguments``) if the call does not
    match its slack_sdk method; a method slack_sdk lacks is ``unknown_method``."""
    problems = argument_problems(method, params)
    if problems:
        log.record("arguments", method, problems)
        error = "unknown_method" if signature_for(method) is None else "invalid_arguments"
        raise ArgumentsRejected(error, problems)


def note_unserved(method: str, *, log: ConformanceLog = CONFORMANCE) -> None:
    """A method the fake does not serve: a violation too if slack_sdk has no such method
    (the fake still answers ``unknown_method``, as Slack does)."""
    if signature_for(method) is None:
        log.record("arguments", method, argument_problems(method, {}))


def record_blocks_rejection(messages: list[str], *, method: str = "", log: ConformanceLog = CONFORMANCE) -> None:
    """A Block Kit payload the strict check refused (the fake answers with Slack's error)."""
    log.record("blocks", method, messages)
