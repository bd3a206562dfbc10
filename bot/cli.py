"""slack-analyst: `serve` runs the Slack bot; `ask` analyses local files in the terminal
with the same engine (handy to check credentials and prompts); `doctor` checks the set-up;
`healthcheck` probes a running bot's /healthz (Docker's HEALTHCHECK).

Settings come from the environment, plus a ``.env`` file in the working directory if
there is one (real environment variables win). A bad setting stops start-up with one
line naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from dotenv import load_dotenv

from bot.db import DatabaseUnavailable
from bot.logs import LOG_FORMATS, configure_logging, secrets_in
from bot.settings import ANALYST_LOG_FORMAT, ANALYST_LOG_LEVEL, ANALYST_METRICS_PORT, PORT, Settings, SettingsError
from bot.usage_report import FORMATS, GROUPINGS

log = logging.getLogger("bot")


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slack-analyst", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default=ANALYST_LOG_LEVEL.read(os.environ))
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, help="json lines (the default, or $ANALYST_LOG_FORMAT) or text for people"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the Slack bot")
    serve.add_argument("--port", type=_port, help=f"HTTP port (default: $PORT, else {PORT.default})")
    serve.add_argument("--http", action="store_true", help="receive events over HTTP even when SLACK_APP_TOKEN is set")

    ask = commands.add_parser("ask", help="analyse local files in the terminal")
    ask.add_argument("files", nargs="*", type=Path, help="data files to analyse")
    ask.add_argument("-q", "--question", default="", help="the question (default: exploratory analysis)")
    ask.add_argument("--out", type=Path, default=Path("analyst-output"), help="where to save generated files")
    ask.add_argument("--no-code", action="store_true", help="don't print the code Claude runs")

    doctor = commands.add_parser("doctor", help="check the settings, credentials and database, one line each")
    doctor.add_argument("--http", action="store_true", help="check for HTTP mode even when SLACK_APP_TOKEN is set")
    doctor.add_argument("--live", action="store_true", help="also run one tiny real analysis and show its cost")

    usage = commands.add_parser("usage", help="runs, tokens, estimated cost and ratings from the ledger (ANALYST_DB)")
    usage.add_argument("--since", default="7d", help="how far back: 90m, 24h, 7d, 2w (default: 7d)")
    usage.add_argument("--by", choices=GROUPINGS, default="user", help="one row per user, channel or UTC day")
    usage.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv or json")

    healthcheck = commands.add_parser(
        "healthcheck", help="probe the running bot's /healthz on this machine; exit 0 when healthy (for Docker)"
    )
    healthcheck.add_argument(
        "--port",
        type=_port,
        help="the port to probe (default: $PORT in HTTP mode, $ANALYST_METRICS_PORT in Socket Mode)",
    )
    healthcheck.add_argument(
        "--http", action="store_true", help="probe HTTP mode's port even when SLACK_APP_TOKEN is set"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv(Path.cwd() / ".env", override=False)
    args = build_parser().parse_args(argv)
    try:
        log_format = args.log_format or ANALYST_LOG_FORMAT.read(os.environ)
    except SettingsError as error:
        print(f"slack-analyst: {error}", file=sys.stderr)
        return 2
    try:
        configure_logging(args.log_level, log_format, secrets=secrets_in(os.environ))
    except ValueError:
        print(f"slack-analyst: --log-level: unknown level {args.log_level!r}", file=sys.stderr)
        return 2
    if args.command == "healthcheck":
        return _healthcheck(args.port, http=args.http)
    if args.command == "doctor":
        return asyncio.run(_doctor(http=args.http, live=args.live))
    if args.command == "usage":
        return asyncio.run(_usage(since=args.since, by=args.by, fmt=args.format))
    try:
        if args.command == "serve":
            settings = Settings.from_env(
                os.environ, slack=True, http=args.http or not os.environ.get("SLACK_APP_TOKEN")
            )
            port = args.port if args.port is not None else _port_from_env()
            # The Slack edge, imported only to serve (the one place bot/ reaches handlers/).
            from handlers.server import run_server

            metrics_port = ANALYST_METRICS_PORT.read(os.environ, slack=False) or None
            return run_server(settings, port=port, http=args.http, metrics_port=metrics_port)
        settings = Settings.from_env(os.environ, slack=False)
        from bot.ask import ask

        return asyncio.run(ask(settings, args.files, args.question, out=args.out, show_code=not args.no_code))
    except SettingsError as error:
        print(f"slack-analyst: {error}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as error:
        print(f"slack-analyst: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"slack-analyst: could not start: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _doctor(*, http: bool, live: bool) -> int:
    """Print each check as it completes; exit status 1 if any failed."""
    from bot.doctor import diagnose, format_check, format_summary

    checks = []
    try:
        async for check in diagnose(os.environ, http=http, live=live):
            checks.append(check)
            print(format_check(check), flush=True)
    except SettingsError as error:
        print(f"slack-analyst: {error}", file=sys.stderr)
        return 2
    print(format_summary(checks))
    return 1 if any(check.failed for check in checks) else 0


async def _usage(*, since: str, by: str, fmt: str) -> int:
    """Print the report (``slack-analyst usage``): from the ledger alone, no credentials needed.
    Exit status 2 for a bad ``--since`` or ``ANALYST_DB``, 1 if there is no ledger to read."""
    import time
    from pathlib import Path
    from typing import cast

    from bot.db import describe_target
    from bot.schema import MigrationError
    from bot.settings import ANALYST_DB
    from bot.store import Store, utc_iso
    from bot.usage_report import Format, Grouping, parse_duration, render

    try:
        start = utc_iso(time.time() - parse_duration(since))
        path = ANALYST_DB.read(os.environ)
    except ValueError as error:
        print(f"slack-analyst: --since: {error}", file=sys.stderr)
        return 2
    except SettingsError as error:
        print(f"slack-analyst: {error}", file=sys.stderr)
        return 2
    shown = describe_target(path)
    if isinstance(path, Path) and not path.is_file():
        print(
            f"slack-analyst: no database at {shown}: the bot creates it when it first runs; "
            "set ANALYST_DB to the file `serve` uses",
            file=sys.stderr,
        )
        return 1
    store = Store(path)
    unreadable: tuple[type[BaseException], ...] = (MigrationError, DatabaseUnavailable, *store.database.errors)
    try:
        async with store:
            rows = await store.runs_since(start)
    except unreadable as error:
        print(f"slack-analyst: could not read the ledger in {shown}: {error}", file=sys.stderr)
        return 1
    if not rows:
        # Said on stderr for csv and json, whose stdout stays a well-formed (empty) report.
        note = f"No runs since {start} (UTC) in {shown}."
        print(note, file=sys.stdout if fmt == "table" else sys.stderr)
        if fmt == "table":
            return 0
    print(render(rows, by=cast(Grouping, by), fmt=cast(Format, fmt), since=start), end="")
    return 0


def _port_from_env() -> int:
    return PORT.read(os.environ, slack=False)


HEALTHCHECK_TIMEOUT_S = 10


def _healthcheck(port: int | None, *, http: bool) -> int:
    """GET http://127.0.0.1:<port>/healthz: 0 if the bot says it is healthy, else 1 (with why)."""
    try:
        if port is None:
            socket_mode = bool(os.environ.get("SLACK_APP_TOKEN", "").strip()) and not http
            port = ANALYST_METRICS_PORT.read(os.environ) if socket_mode else _port_from_env()
            if socket_mode and port == 0:
                print(
                    "slack-analyst healthcheck: ANALYST_METRICS_PORT is 0, so nothing serves /healthz", file=sys.stderr
                )
                return 1
    except SettingsError as error:
        print(f"slack-analyst: {error}", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT_S) as response:
            print(response.read().decode("utf-8", "replace"))
            return 0
    except urllib.error.HTTPError as error:
        print(f"slack-analyst healthcheck: {url} answered {error.code}: {error.read().decode('utf-8', 'replace')}")
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"slack-analyst healthcheck: could not reach {url}: {error}", file=sys.stderr)
        return 1
