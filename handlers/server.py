"""Runs the Bolt app: over Socket Mode, or as an HTTP server with a health check.

HTTP mode serves ``POST /slack/events`` (events, slash commands and interactivity; a
signed Events API delivery is acknowledged before Bolt dispatches it), ``GET /metrics``
(Prometheus text format) and ``GET /healthz`` (200 when the database answers and the bot is
ready, else 503; the report also shows the limiter). Socket Mode serves
``/metrics`` and ``/healthz`` on ``ANALYST_METRICS_PORT`` (there, "connected" is the
socket's state). On SIGTERM or SIGINT the bot stops taking new work and lets running analyses
finish within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.analyst import Analyst
from bot.clients import anthropic_client
from bot.health import health
from bot.metrics import CONTENT_TYPE, Metrics
from bot.settings import Settings
from bot.store import Store
from bot.surface import Clock
from handlers.app import create_app
from handlers.slack.clients import slack_client, slack_session
from handlers.slack.errors import slack_error_code
from handlers.slack.surface import SlackSurface

log = logging.getLogger(__name__)


DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=120)


@contextlib.asynccontextmanager
async def open_analyst(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[tuple[Analyst, SlackSurface]]:
    """The core, and Slack as its surface, ready for requests; the store and every client
    close on exit."""
    async with (
        Store(settings.db_path, clock=clock, pool_size=settings.db_pool_size) as store,
        aiohttp.ClientSession(timeout=DOWNLOAD_TIMEOUT) as http,
        slack_session() as web_api,
    ):
        claude = anthropic_client(settings)
        metrics = Metrics()
        client = slack_client(settings, session=web_api, on_error=metrics.record_slack_error)
        surface = SlackSurface(settings, client, http)
        try:
            yield Analyst(settings, store, claude, surface, metrics), surface
        finally:
            await claude.close()


def add_observability(
    web_app: web.Application, analyst: Analyst, *, connected: Callable[[], Awaitable[bool]], mode: str
) -> None:
    """``GET /metrics`` and ``GET /healthz`` on ``web_app``; ``connected`` says whether Slack is."""

    async def metrics(request: web.Request) -> web.Response:
        body = analyst.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        ok, report = await health(analyst.store, analyst.parts.queue, connected=await connected(), mode=mode)
        report["analyses_running"] = analyst.busy
        return web.json_response(report, status=200 if ok else 503)

    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/healthz", healthz)


def http_app(app: AsyncApp, analyst: Analyst, ready: asyncio.Event) -> web.Application:
    """The aiohttp application for HTTP mode."""
    secret = analyst.settings.slack_signing_secret
    verifier = SignatureVerifier(secret) if secret else None

    async def slack_events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        if acknowledge_first(bolt_request, request.headers, verifier):
            # Events API: Slack wants an empty 200 within 3 s and nothing else from the
            # response, so it is sent now and Bolt (middleware, listeners) runs after it. Under a
            # burst of deliveries, an acknowledgement then waits for no other event's dispatch.
            analyst.spawn(app.async_dispatch(bolt_request), name="slack event")
            return web.Response()
        bolt_response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def is_ready() -> bool:
        return ready.is_set()

    web_app = web.Application(client_max_size=4 * 1024 * 1024)
    web_app.router.add_post("/slack/events", slack_events)
    add_observability(web_app, analyst, connected=is_ready, mode="http")
    return web_app


def acknowledge_first(
    request: AsyncBoltRequest, headers: Mapping[str, str], verifier: SignatureVerifier | None
) -> bool:
    """Whether ``request`` is an Events API delivery (``event_callback``) that passes Slack's
    signature check (when checks are on): its acknowledgement needs nothing from Bolt. Anything
    else, a forged or stale delivery included, goes through Bolt, which answers it."""
    if request.body.get("type") != "event_callback":
        return False
    return verifier is None or verifier.is_valid_request(request.raw_body, headers)


class RunningBot:
    """The bot, started: connected to Slack one way or the other, until :meth:`stop`."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: bool,
        port: int = 3000,
        host: str = "0.0.0.0",  # noqa: S104 - a server listens on all interfaces
        clock: Clock | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.http = http or not settings.socket_mode
        self.port = port
        self.metrics_port = metrics_port  # Socket Mode: /metrics and /healthz here (None: off; 0: any free port)
        self.host = host
        self.clock = clock
        self.ready = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self.analyst: Analyst
        self.surface: SlackSurface

    @property
    def url(self) -> str:
        """Base URL of the HTTP server (HTTP mode only)."""
        if self._runner is None:
            raise RuntimeError("not serving HTTP")
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    @property
    def metrics_url(self) -> str:
        """Base URL of the Socket Mode metrics server."""
        if self._metrics_runner is None:
            raise RuntimeError("not serving metrics")
        host, port = self._metrics_runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def start(self) -> RunningBot:
        self.analyst, surface = await self._stack.enter_async_context(open_analyst(self.settings, clock=self.clock))
        self.surface = surface
        await self.analyst.start()
        app = create_app(self.settings, self.analyst, surface)
        if self.http:
            self._runner = web.AppRunner(http_app(app, self.analyst, self.ready), access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, host=self.host, port=self.port).start()
            log.info("listening for Slack events at %s/slack/events", self.url)
        else:
            self._socket = AsyncSocketModeHandler(app, self.settings.slack_app_token, web_client=surface.client)
            if self.metrics_port is not None:  # first: a port in use stops start-up before Slack connects
                await self._serve_metrics(self.metrics_port, self._socket)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("connected to Slack over Socket Mode")
        self.ready.set()
        return self

    async def _serve_metrics(self, port: int, socket: AsyncSocketModeHandler) -> None:
        async def connected() -> bool:
            return self.ready.is_set() and await socket.client.is_connected()

        web_app = web.Application()
        add_observability(web_app, self.analyst, connected=connected, mode="socket")
        self._metrics_runner = web.AppRunner(web_app, access_log=None)
        await self._metrics_runner.setup()
        await web.TCPSite(self._metrics_runner, host=self.host, port=port).start()
        log.info("serving /metrics and /healthz at %s", self.metrics_url)

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking new work, let running analyses finish within ``grace`` (default
        ``ANALYST_SHUTDOWN_GRACE_S``), then record the rest as interrupted and close."""
        grace = self.settings.shutdown_grace_s if grace is None else grace
        self.ready.clear()
        self.analyst.stop_taking_work()
        if self._runner is not None:
            await self._runner.shutdown()
        if self._socket is not None:
            await self._socket.disconnect_async()  # type: ignore[no-untyped-call]
        await self.analyst.shutdown(grace)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        await self._stack.aclose()


async def serve(settings: Settings, *, port: int, http: bool, metrics_port: int | None = None) -> None:
    """Run the bot until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bot = await RunningBot(settings, http=http, port=port, metrics_port=metrics_port).start()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await bot.stop()


def run_server(settings: Settings, *, port: int, http: bool, metrics_port: int | None = None) -> int:
    """``slack-analyst serve``: run the bot; the exit status, with a one-line reason on
    stderr when Slack can't be reached or refuses the credentials."""
    try:
        asyncio.run(serve(settings, port=port, http=http, metrics_port=metrics_port))
    except SlackApiError as error:
        code = slack_error_code(error)
        print(f"slack-analyst: Slack refused the bot's credentials ({code}); check SLACK_BOT_TOKEN.", file=sys.stderr)
        return 2
    except aiohttp.ClientConnectionError as error:
        url = settings.slack_api_url or "Slack"
        print(f"slack-analyst: could not reach {url} ({error}); check the network or SLACK_API_URL.", file=sys.stderr)
        return 1
    return 0
