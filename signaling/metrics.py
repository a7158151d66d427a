"""Prometheus metrics for one server process, in a registry of its own."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from .protocol import JSONObject
from .router import Router


class _Counts(Collector):
    """Counters kept as plain dict entries and turned into samples at scrape time:
    a relayed message costs one dict increment instead of prometheus_client's
    labels() lookup and lock, which profiling showed at 7% of the relay path."""

    def __init__(self) -> None:
        self.relayed: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.bad_envelopes = 0

    def collect(self) -> Iterator[Metric]:
        relayed = CounterMetricFamily(
            "signaling_messages_relayed",
            "Messages relayed to another user, by type",
            labels=["type"],
        )
        for kind, count in sorted(self.relayed.items()):
            relayed.add_metric([kind], count)
        yield relayed
        errors = CounterMetricFamily(
            "signaling_errors", "Error replies sent, by reason", labels=["reason"]
        )
        for reason, count in sorted(self.errors.items()):
            errors.add_metric([reason], count)
        yield errors
        yield CounterMetricFamily(
            "signaling_redis_bad_envelopes",
            "Envelopes from Redis (--redis) dropped because they could not be handled",
            value=self.bad_envelopes,
        )


class Metrics:
    def __init__(self, router: Router) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        Gauge(
            "signaling_connections", "Open WebSocket connections", registry=self.registry
        ).set_function(lambda: router.connection_count)
        Gauge("signaling_users", "Logged-in users", registry=self.registry).set_function(
            lambda: router.user_count
        )
        Gauge(
            "signaling_active_calls",
            "Calls in progress (ringing or answered)",
            registry=self.registry,
        ).set_function(lambda: router.active_call_count)
        # A task per connection, and the ones aiohttp and Redis start: after a load has
        # gone this is back at its idle value, or something was left behind (a leak).
        Gauge(
            "signaling_tasks",
            "asyncio tasks alive in the server's event loop",
            registry=self.registry,
        ).set_function(_task_count)
        self._counts = _Counts()
        self.registry.register(self._counts)

    def observe_outgoing(self, message: JSONObject, *, relayed: bool) -> None:
        kind = message["type"]
        if kind == "error" or (kind == "login" and message.get("success") is False):
            self._counts.errors[str(message.get("reason"))] += 1
        elif relayed:
            self._counts.relayed[kind] += 1

    def count_bad_envelope(self) -> None:
        self._counts.bad_envelopes += 1

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _task_count() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # scraped outside the event loop (a unit test): no tasks
        return 0
