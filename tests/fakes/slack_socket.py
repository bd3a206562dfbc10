"""Socket Mode on the fake Slack: the ``/socket-mode`` WebSocket, envelopes and acks.

A client gets its URL from ``apps.connections.open`` (the ticket in the query must be
one the fake issued), receives a ``hello`` frame on connect (``num_connections``,
``debug_info``, ``connection_info``) and acknowledges every envelope with
``{"envelope_id": ...}``, as slack-sdk's ``SocketModeClient`` expects and does.
Deliveries may run concurrently: frames are sent one at a time and acks are matched to
their envelope by id.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Collection

import aiohttp
from aiohttp import web

from tests.fakes.slack_events import disconnect_frame, hello_frame, socket_envelope
from tests.fakes.slack_models import JSON

DEFAULT_ACK_TIMEOUT = 5.0


class SocketModeServer:
    """The open Socket Mode connections, and the envelopes waiting for their ack."""

    def __init__(self, *, app_id: str, tickets: Collection[str], on_change: Callable[[], None]) -> None:
        self.app_id = app_id
        self._tickets = tickets
        self._on_change = on_change
        #: every ack received, in order
        self.acks: list[JSON] = []
        #: connections ever opened (a reconnect counts again)
        self.connects = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._pending: dict[str, asyncio.Future[JSON]] = {}
        #: one frame at a time on the wire, however many deliveries run concurrently
        self._send_lock = asyncio.Lock()

    @property
    def open_connections(self) -> int:
        return sum(1 for socket in self._sockets if not socket.closed)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /socket-mode?ticket=…``: greet with ``hello``, then collect acks until closed."""
        if request.query.get("ticket") not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        self.connects += 1
        self._on_change()
        try:
            await self._send(socket, hello_frame(num_connections=self.open_connections, app_id=self.app_id))
            async for frame in socket:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self._receive(frame.data)
        finally:
            self._sockets.remove(socket)
            self._on_change()
        return socket

    async def deliver(
        self,
        payload: JSON,
        *,
        envelope_type: str,
        retry_attempt: int,
        retry_reason: str,
        envelope_id: str | None,
        timeout: float,
    ) -> JSON:
        """Send an envelope to the newest connection; return its ack (AssertionError if none comes)."""
        socket = next((s for s in reversed(self._sockets) if not s.closed), None)
        if socket is None:
            raise AssertionError("no Socket Mode client is connected (await slack.wait_socket_connected())")
        envelope_id = envelope_id or str(uuid.uuid4())
        acked: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._pending[envelope_id] = acked
        frame = socket_envelope(
            payload,
            envelope_type=envelope_type,
            envelope_id=envelope_id,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )
        try:
            await self._send(socket, frame)
            return await asyncio.wait_for(acked, timeout)
        except TimeoutError:
            raise AssertionError(
                f"Socket Mode client did not ack envelope {envelope_id} ({envelope_type}) within {timeout}s"
            ) from None
        finally:
            self._pending.pop(envelope_id, None)

    async def disconnect(self, reason: str) -> None:
        """Send Slack's ``disconnect`` frame to every open connection (clients reconnect)."""
        for socket in list(self._sockets):
            if not socket.closed:
                await self._send(socket, disconnect_frame(reason))

    async def close(self) -> None:
        for socket in list(self._sockets):
            await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"server shutdown")
        for pending in self._pending.values():
            pending.cancel()

    async def _send(self, socket: web.WebSocketResponse, frame: JSON) -> None:
        async with self._send_lock:
            await socket.send_json(frame)

    def _receive(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            return
        if not isinstance(ack, dict) or "envelope_id" not in ack:
            return
        self.acks.append(ack)
        pending = self._pending.get(str(ack["envelope_id"]))
        if pending is not None and not pending.done():
            pending.set_result(ack)
        self._on_change()
