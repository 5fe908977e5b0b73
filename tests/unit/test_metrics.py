"""Prometheus metric definitions: names, labels, and that increments reach the exposition."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import CONTENT_TYPE_TEXT, Metrics, render_latest


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = render_latest(metrics.registry)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return _samples(metrics)[(name, frozenset(labels.items()))]


def test_increments_appear_in_the_exposition() -> None:
    m = Metrics()
    m.requests_queued_total.labels(trigger="app_mention").inc()
    m.requests_queued_total.labels(trigger="app_mention").inc()
    m.requests_waiting.set(3)
    m.runs_created_total.inc()
    m.runs_finished_total.labels(final_status="COMPLETE").inc()
    m.runs_finished_total.labels(final_status="FAILED").inc()
    m.codegen_call("runs.create", 200)
    m.codegen_call("runs.create", 429)
    m.codegen_call("runs.list", None)
    m.rate_limit_waited("create", 2.5)
    m.rate_limit_waited("read", 0.0)  # no wait: not counted
    m.poll_lag_seconds.observe(0.4)
    m.slack_error("chat.update", "message_not_found")
    m.slack_error("reactions.add", None)

    assert _value(m, "codegen_bot_requests_queued_total", trigger="app_mention") == 2
    assert _value(m, "codegen_bot_requests_waiting") == 3
    assert _value(m, "codegen_bot_runs_created_total") == 1
    assert _value(m, "codegen_bot_runs_finished_total", final_status="COMPLETE") == 1
    assert _value(m, "codegen_bot_runs_finished_total", final_status="FAILED") == 1
    calls = "codegen_bot_codegen_calls_total"
    assert _value(m, calls, endpoint="runs.create", status_code="200") == 1
    assert _value(m, calls, endpoint="runs.create", status_code="429") == 1
    assert _value(m, calls, endpoint="runs.list", status_code="error") == 1
    assert _value(m, "codegen_bot_rate_limit_waits_total", bucket="create") == 1
    assert _value(m, "codegen_bot_rate_limit_waits_total", bucket="read") == 0
    assert _value(m, "codegen_bot_rate_limit_wait_seconds_sum") == 2.5
    assert _value(m, "codegen_bot_rate_limit_wait_seconds_count") == 1
    assert _value(m, "codegen_bot_poll_lag_seconds_count") == 1
    assert _value(m, "codegen_bot_poll_lag_seconds_bucket", le="0.5") == 1
    assert _value(m, "codegen_bot_poll_lag_seconds_bucket", le="0.25") == 0
    errors = "codegen_bot_slack_errors_total"
    assert _value(m, errors, method="chat.update", error="message_not_found") == 1
    assert _value(m, errors, method="reactions.add", error="unknown") == 1


def test_known_labels_start_at_zero() -> None:
    samples = _samples(Metrics())
    for trigger in ("slash_command", "app_mention", "thread_reply", "direct_message"):
        key = ("codegen_bot_requests_queued_total", frozenset({("trigger", trigger)}))
        assert samples[key] == 0
    for bucket in ("create", "read"):
        assert samples[("codegen_bot_rate_limit_waits_total", frozenset({("bucket", bucket)}))] == 0


def test_fresh_registries_are_independent() -> None:
    """Two Metrics objects never share state or clash on registration."""
    a, b = Metrics(), Metrics(CollectorRegistry())
    a.runs_created_total.inc()
    assert _value(a, "codegen_bot_runs_created_total") == 1
    assert _value(b, "codegen_bot_runs_created_total") == 0


def test_render_latest_content_types() -> None:
    m = Metrics(process_metrics=True)
    body, content_type = render_latest(m.registry)
    assert content_type == CONTENT_TYPE_TEXT
    assert b"# TYPE codegen_bot_runs_created_total counter" in body
    assert b"process_" in body or b"python_info" in body
    body, content_type = render_latest(m.registry, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
