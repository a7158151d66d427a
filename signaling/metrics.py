"""Prometheus metrics for one server process, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .protocol import JSONObject
from .router import Router


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
        self.relayed = Counter(
            "signaling_messages_relayed",
            "Messages relayed to another user, by type",
            ["type"],
            registry=self.registry,
        )
        self.errors = Counter(
            "signaling_errors", "Error replies sent, by reason", ["reason"], registry=self.registry
        )

    def observe_outgoing(self, message: JSONObject, *, relayed: bool) -> None:
        kind = message.get("type")
        if kind == "error" or (kind == "login" and message.get("success") is False):
            self.errors.labels(reason=str(message.get("reason"))).inc()
        elif relayed:
            self.relayed.labels(type=str(kind)).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
