"""HTTP plumbing of the fake Slack: reading Web API requests, fault and file responses."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from tests.fakes.slack_events import SERVER_ERROR_HTML
from tests.fakes.slack_models import JSON, ApiCall, Fault, SlackFile
from tests.fakes.slack_web_api import ApiError

DOWNLOAD_CHUNK = 64 * 1024


async def read_api_request(request: web.Request) -> tuple[JSON, str | None]:
    """The arguments (query + body) and token of a Web API request.

    JSON bodies must carry the token in ``Authorization`` (Slack ignores a body token);
    form and query encodings may also pass ``token`` as an argument.
    """
    params: JSON = dict(request.query)
    body_token: str | None = None
    if request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise ApiError("invalid_json") from None
            if not isinstance(body, dict):
                raise ApiError("invalid_json")
            body.pop("token", None)
            params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for name, value in form.items():
                params[name] = value.file.read() if isinstance(value, web.FileField) else value
    if "token" in params:
        body_token = str(params.pop("token"))
    return params, bearer(request) or body_token


def bearer(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if any."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return header.removeprefix("Bearer ").strip() or None


def fault_response(fault: Fault, call: ApiCall | None = None) -> web.Response:
    """The response of a ``fail_next`` fault (recorded on ``call`` for Web API methods)."""
    if fault.status == 429:
        body: JSON = {"ok": False, "error": "ratelimited"}
        response = web.json_response(
            body,
            status=429,
            headers={"Retry-After": str(1 if fault.retry_after is None else fault.retry_after)},
        )
    elif fault.status >= 500:
        body = {}
        response = web.Response(status=fault.status, text=SERVER_ERROR_HTML, content_type="text/html")
    else:
        body = {"ok": False, "error": fault.error or "fatal_error"}
        response = web.json_response(body, status=fault.status)
    if call is not None:
        call.http_status = fault.status
        call.response = body or None
    return response


async def upload_body(request: web.Request) -> bytes:
    """The uploaded bytes: the raw body, or the first file of a multipart form."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        for value in form.values():
            if isinstance(value, web.FileField):
                return value.file.read()
        return b""
    return await request.read()


def upload_problem(file: SlackFile | None, data: bytes) -> tuple[int, str]:
    """(HTTP status, body) for an upload POST; 200 "OK - <bytes>" when accepted.

    Slack's answers to a bad upload are undocumented: the fake refuses an unknown ticket
    (404), a second upload (400) and a length other than announced (400).
    """
    if file is None:
        return 404, "upload ticket not found"
    if file.state != "pending":
        return 400, "file already uploaded"
    if len(data) != file.expected_length:
        return 400, f"length mismatch: announced {file.expected_length} bytes, received {len(data)}"
    return 200, f"OK - {len(data)}"


async def stream_file(request: web.Request, file: SlackFile, *, download: bool) -> web.StreamResponse:
    """Serve a hosted file's bytes in chunks (so tests can host files of a few MB)."""
    content = file.content or b""
    response = web.StreamResponse(headers={"Content-Type": file.mimetype})
    if download:
        # RFC 6266/5987: the name percent-encoded, so any character is safe in a header.
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(file.name, safe='')}"
    response.content_length = len(content)
    await response.prepare(request)
    for start in range(0, len(content), DOWNLOAD_CHUNK):
        await response.write(content[start : start + DOWNLOAD_CHUNK])
    await response.write_eof()
    return response
