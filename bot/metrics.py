"""Prometheus metrics of one bot process (served at ``/metrics``; README, "Operations").

Most of them come from the run stream: :class:`RunMeter` is a subscriber of each run's
progress events, beside the ledger (:mod:`bot.run`, :mod:`bot.ask`). What is not a run event
has one explicit hook each: quota refusals at admission (:meth:`Metrics.quota_refused`, from
:mod:`bot.analyst`), uploads and their deduplication (``FilesApi(on_upload=...)``), retention
deletions (``Sweeper(on_sweep=...)``) and the surface's API errors
(:meth:`Metrics.record_slack_error`, from the Slack client). The limiter's queue, width,
ceiling, pause and headroom are read when Prometheus scrapes.

Each :class:`Metrics` owns its own registry (never the process-global one), so several bots
can run in one process, as they do in the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.limiter import Limiter
from bot.progress import (
    Cancelled,
    Failed,
    Finished,
    Preparing,
    QuestionTruncated,
    Queued,
    Retrying,
    RunEvent,
    Usage,
)

#: The Content-Type of :meth:`Metrics.exposition` (Prometheus text format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Analyses take seconds to many minutes; first feedback should come in well under a second.
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, float("inf"))
FEEDBACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))

#: The events a person sees first after admission: a place in the queue, the progress message
#: (Preparing), the note that the question was cut, a failure, a stop, or the run's end.
FIRST_FEEDBACK = (Queued, Preparing, QuestionTruncated, Failed, Cancelled, Finished)


class Metrics:
    """The process's metrics, in a registry of their own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        registry = self.registry
        self.runs = Counter(
            "analyst_runs", "Runs ended, by ledger status and source", ["status", "source"], registry=registry
        )
        self.duration = Histogram(
            "analyst_run_duration_seconds",
            "Time from admission to the end of a run (queueing included)",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.first_feedback = Histogram(
            "analyst_first_feedback_seconds",
            "Time from admission to the first thing the asker sees of the run "
            "(queue place, progress message, truncation note, failure or end)",
            buckets=FEEDBACK_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "analyst_tokens",
            "Tokens used, by kind (input, cache_read, cache_write, output)",
            ["kind"],
            registry=registry,
        )
        self.cost = Counter(
            "analyst_estimated_cost_dollars", "Estimated cost at list prices (bot/pricing.py)", registry=registry
        )
        self.code_executions = Counter("analyst_code_executions", "Sandbox steps that executed code", registry=registry)
        self.quota_refusals = Counter(
            "analyst_quota_refusals",
            "Requests refused by a quota, by the limit's setting",
            ["limit"],
            registry=registry,
        )
        self.errors = Counter(
            "analyst_errors",
            "Errors from Slack (by API error code) and Anthropic (by error kind; retried attempts included)",
            ["service", "kind"],
            registry=registry,
        )
        self.files_uploaded = Counter("analyst_files_uploaded", "Files uploaded to the Files API", registry=registry)
        self.files_deduplicated = Counter(
            "analyst_files_deduplicated",
            "Files already in the Files API, reused instead of uploaded",
            registry=registry,
        )
        self.retention_deletions = Counter(
            "analyst_retention_deletions",
            "What the retention sweep deleted: files (at Anthropic) and conversations",
            ["what"],
            registry=registry,
        )
        for kind in ("input", "cache_read", "cache_write", "output"):
            self.tokens.labels(kind)  # every kind shows, 0 until used

    def watch(self, limiter: Limiter) -> None:
        """Read the limiter's state at each scrape: running, waiting, its width, ceiling and pause."""
        registry = self.registry
        gauges: tuple[tuple[str, str, Callable[[], float]], ...] = (
            ("analyst_queue_running", "Analyses holding a slot now", lambda: limiter.running),
            ("analyst_queue_waiting", "Analyses waiting for a slot now", lambda: limiter.waiting),
            (
                "analyst_queue_slots",
                "Analyses allowed to run at once now (the limiter's width)",
                lambda: limiter.slots,
            ),
            (
                "analyst_limiter_ceiling",
                "The most the limiter's width may grow to (ANALYST_MAX_CONCURRENT, or the adaptive maximum)",
                lambda: limiter.most,
            ),
            (
                "analyst_limiter_paused_seconds",
                "Seconds left before new Anthropic calls may start after a 429/529 (0: not paused)",
                lambda: limiter.paused_s,
            ),
            (
                "analyst_limiter_headroom_ratio",
                "The smallest fraction left of any Anthropic rate limit in the last response that reported them",
                lambda: 1.0 if limiter.headroom.lowest is None else limiter.headroom.lowest,
            ),
        )
        for name, text, read in gauges:
            Gauge(name, text, registry=registry).set_function(read)

    def follow(self, *, source: str, model: str) -> RunMeter:
        """A subscriber for one run, just admitted, from ``source``, on ``model``."""
        return RunMeter(self, source=source, model=model)

    # -- the hooks outside the run stream ---------------------------------------------------------

    def quota_refused(self, limit: str) -> None:
        self.quota_refusals.labels(limit).inc()

    def record_slack_error(self, code: str) -> None:
        self.errors.labels("slack", code).inc()

    def upload_sent(self, reused: bool) -> None:
        """A file went to the Files API (``reused``: it was already there)."""
        (self.files_deduplicated if reused else self.files_uploaded).inc()

    def swept(self, files: int, conversations: int) -> None:
        """A retention sweep deleted ``files`` at Anthropic and ``conversations``."""
        self.retention_deletions.labels("file").inc(files)
        self.retention_deletions.labels("conversation").inc(conversations)

    def exposition(self) -> bytes:
        """Everything, in the Prometheus text format."""
        return generate_latest(self.registry)


class RunMeter:
    """Follows one run's events into the metrics (a :class:`bot.surface.Subscriber`)."""

    def __init__(self, metrics: Metrics, *, source: str, model: str) -> None:
        self.metrics = metrics
        self.source = source
        self.model = model
        self.admitted = metrics.clock()
        self.seen = False

    async def on(self, event: RunEvent) -> None:
        metrics = self.metrics
        if not self.seen and isinstance(event, FIRST_FEEDBACK):
            self.seen = True
            metrics.first_feedback.observe(metrics.clock() - self.admitted)
        if isinstance(event, Usage):
            self._count(event)
        elif isinstance(event, Retrying | Failed) and event.kind:
            metrics.errors.labels("anthropic", event.kind).inc()
        elif isinstance(event, Finished):
            metrics.runs.labels(event.status, self.source).inc()
            metrics.duration.observe(metrics.clock() - self.admitted)
            metrics.code_executions.inc(event.code_runs)

    def _count(self, usage: Usage) -> None:
        tokens = self.metrics.tokens
        tokens.labels("input").inc(usage.input_tokens)
        tokens.labels("cache_read").inc(usage.cache_read_tokens)
        tokens.labels("cache_write").inc(usage.cache_write_tokens)
        tokens.labels("output").inc(usage.output_tokens)
        self.metrics.cost.inc(usage.cost(self.model))
