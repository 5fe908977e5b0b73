"""Prometheus metrics, kept in the bot's own CollectorRegistry.

One `Metrics` object is built at start-up and handed to the parts that count things; tests
build their own with a fresh registry. `/metrics` serves `render_latest(metrics.registry)`.

Exposed names carry the `codegen_bot_` prefix (counters end in `_total`):

| attribute | type | labels |
| --- | --- | --- |
| requests_queued_total | counter | trigger |
| requests_unqueued_total | counter | |
| requests_waiting | gauge | |
| runs_created_total | counter | |
| runs_finished_total | counter | final_status |
| codegen_calls_total | counter | endpoint, status_code ("error" = no response) |
| rate_limit_waits_total | counter | bucket (create, read) |
| rate_limit_wait_seconds | histogram | |
| budget_spent | gauge | bucket (create, read): calls in the current window, all replicas |
| budget_left | gauge | bucket (create, read): calls the current window still allows |
| poll_lag_seconds | histogram | |
| slack_calls_total | counter | method, outcome (OUTCOMES in bot.slack.gateway) |
| slack_errors_total | counter | method, error |
| tick_seconds | histogram | job (dispatch, poll, renew, reap, prune, optimize, checkpoint, ...) |
| card_lag_seconds | histogram | |

Each replica exposes its own numbers; sum them in Prometheus (`sum without (instance)`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

NAMESPACE = "codegen_bot"
#: Content type of `generate_latest` output (text format 0.0.4).
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"

TRIGGERS = ("slash_command", "app_mention", "thread_reply", "direct_message")
RATE_LIMIT_BUCKETS = ("create", "read")
TRANSPORT_ERROR = "error"

# Ticks: from a few milliseconds to longer than their interval.
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Waiting for the rate limit: from a fraction of a second up to a blocked org (Retry-After).
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# How late a due run was polled: ticks are seconds apart, a backlog shows as minutes.
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    """Every metric the bot exports, registered in `self.registry`."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = False
    ) -> None:
        """`registry=None` makes a new registry. `process_metrics=True` also registers the
        standard process/platform/GC collectors (memory, CPU, open fds) in it."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        ns = NAMESPACE

        self.requests_queued_total = Counter(
            "requests_queued",
            "Slack requests committed to the queue, by trigger",
            ["trigger"],
            namespace=ns,
            registry=r,
        )
        self.requests_unqueued_total = Counter(
            "requests_unqueued",
            "Requests the store could not take at ack time (the person was told)",
            namespace=ns,
            registry=r,
        )
        self.requests_waiting = Gauge(
            "requests_waiting",
            "Queued requests without a run yet (pending in the store)",
            namespace=ns,
            registry=r,
        )
        self.runs_created_total = Counter(
            "runs_created",
            "Codegen agent runs created or resumed by this replica",
            namespace=ns,
            registry=r,
        )
        self.runs_finished_total = Counter(
            "runs_finished",
            "Tracked runs that reached a final status",
            ["final_status"],
            namespace=ns,
            registry=r,
        )
        self.codegen_calls_total = Counter(
            "codegen_calls",
            'Codegen API calls by endpoint and HTTP status ("error" when no response came)',
            ["endpoint", "status_code"],
            namespace=ns,
            registry=r,
        )
        self.rate_limit_waits_total = Counter(
            "rate_limit_waits",
            "Times a Codegen call had to wait for the shared rate-limit budget",
            ["bucket"],
            namespace=ns,
            registry=r,
        )
        self.rate_limit_wait_seconds = Histogram(
            "rate_limit_wait_seconds",
            "Time spent waiting for the shared rate-limit budget (create and read together)",
            namespace=ns,
            registry=r,
            buckets=WAIT_BUCKETS,
        )
        self.budget_spent = Gauge(
            "budget_spent",
            "Codegen calls in the current window of the organization's budget (all replicas)",
            ["bucket"],
            namespace=ns,
            registry=r,
        )
        self.budget_left = Gauge(
            "budget_left",
            "Codegen calls the current window of the organization's budget still allows",
            ["bucket"],
            namespace=ns,
            registry=r,
        )
        self.poll_lag_seconds = Histogram(
            "poll_lag_seconds",
            "How late a due run was polled (poll time minus due time)",
            namespace=ns,
            registry=r,
            buckets=LAG_BUCKETS,
        )
        self.slack_calls_total = Counter(
            "slack_calls",
            "Slack Web API call attempts by method and outcome (no_budget: held back unsent "
            "to keep inside Slack's rate tiers)",
            ["method", "outcome"],
            namespace=ns,
            registry=r,
        )
        self.slack_errors_total = Counter(
            "slack_errors",
            "Slack Web API calls that failed, by method and Slack error code",
            ["method", "error"],
            namespace=ns,
            registry=r,
        )
        self.tick_seconds = Histogram(
            "tick_seconds",
            "How long each scheduler tick took, by job (a tick longer than its interval "
            "delays the next)",
            ["job"],
            namespace=ns,
            registry=r,
            buckets=TICK_BUCKETS,
        )
        self.card_lag_seconds = Histogram(
            "card_lag_seconds",
            "From a status change being seen to the card edit that shows it",
            namespace=ns,
            registry=r,
            buckets=LAG_BUCKETS,
        )

        # Known label values start at 0 so rates and alerts work before the first event.
        for trigger in TRIGGERS:
            self.requests_queued_total.labels(trigger=trigger)
        for bucket in RATE_LIMIT_BUCKETS:
            self.rate_limit_waits_total.labels(bucket=bucket)

    # -- helpers for the common cases ------------------------------------------------------

    def codegen_call(self, endpoint: str, status_code: int | None) -> None:
        """Count one Codegen API call; `status_code=None` means a transport failure."""
        status = TRANSPORT_ERROR if status_code is None else str(status_code)
        self.codegen_calls_total.labels(endpoint=endpoint, status_code=status).inc()

    def rate_limit_waited(self, bucket: str, seconds: float) -> None:
        """Record a wait for the `create` or `read` budget (zero-length waits are not counted)."""
        if seconds <= 0:
            return
        self.rate_limit_waits_total.labels(bucket=bucket).inc()
        self.rate_limit_wait_seconds.observe(seconds)

    def budget_seen(self, bucket: str, *, spent: int, limit: int) -> None:
        """The window of `bucket` as a spend found it: `spent` of `limit` calls used."""
        self.budget_spent.labels(bucket=bucket).set(spent)
        self.budget_left.labels(bucket=bucket).set(max(0, limit - spent))

    def tick_took(self, job: str, seconds: float) -> None:
        self.tick_seconds.labels(job=job).observe(seconds)

    def slack_call(self, method: str, outcome: str) -> None:
        """Count one attempt at a Slack call by what became of it."""
        self.slack_calls_total.labels(method=method, outcome=outcome).inc()

    def slack_error(self, method: str, error: str | None) -> None:
        """Count a failed Slack call (`error` is Slack's error code, e.g. `channel_not_found`)."""
        self.slack_errors_total.labels(method=method, error=error or "unknown").inc()


def render_latest(
    registry: CollectorRegistry, accept_header: str | None = None
) -> tuple[bytes, str]:
    """The exposition of `registry` and its content type, for the /metrics endpoint.

    Without `accept_header`: the classic text format (0.0.4), which every Prometheus
    understands. Pass the request's Accept header to let a scraper negotiate OpenMetrics.
    """
    if accept_header:
        encoder, content_type = choose_encoder(accept_header)
        return encoder(registry), content_type
    return generate_latest(registry), CONTENT_TYPE_TEXT
