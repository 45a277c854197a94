"""Prometheus metrics of one imgate process, exposed by the admin API's ``/metrics``.

Each ``App`` owns a ``Metrics`` with its own ``CollectorRegistry`` (never the library's global
one): the tests run many Apps in one process, and in a multi-process deployment each process
serves its own ``/metrics`` (its ``process_*`` metrics and its ``role`` in ``imgate_build_info``),
to be summed by the scraper, not in here.

Two kinds of metrics:

* latency histograms the bridge feeds as it works (``imgate.metrics.Metrics`` is the bridge's
  ``Timings``): from a message taken off the ingress to its ack, or an RPC's reply, handed to
  the broker;
* the counters and gauges the app already keeps (broker, bridge, push, search), read at scrape
  time from the snapshot dict ``App.metrics()`` builds, and turned into metric families with a
  HELP text each. The exported names are those of the hand-written format this replaced:
  ``imgate_<name>``, counters ending in ``_total``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata

from prometheus_client import CollectorRegistry, Histogram, Info, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.rpc import METHODS

PREFIX = "imgate_"

# 0.5 ms .. 5 s: an in-process send is a few milliseconds (a group commit), a slow database or
# broker takes the tail; past 5 s only the count matters (+Inf).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

OTHER_METHOD = "other"  # an RPC method outside the known set (the router refuses those today)

# HELP texts of the snapshot's names (``App.metrics()``). A name missing here is still exported,
# with a generic help; tests/test_metrics.py checks the app's snapshot is covered.
HELP: dict[str, str] = {
    "bridge_amqp_shards_handed_on_total": "Cluster mode: sender shards this bridge handed on to the bridge preferring them.",
    "bridge_amqp_oversize_dropped_total": "Cluster mode: messages over broker.max_packet_bytes dropped unread (the embedded broker refuses such a packet).",
    "connections": "MQTT connections open on the embedded broker.",
    "broker_delivered_total": "Messages the embedded broker sent to clients.",
    "broker_queued_total": "Messages queued for a client that was offline or had its in-flight window full.",
    "broker_redelivered_total": "Unacknowledged messages sent again (on reconnect).",
    "broker_dropped_offline_total": "Queued messages dropped because a client's queue was full.",
    "broker_dropped_qos0_total": "QoS 0 messages dropped because the client was away or not reading.",
    "broker_dropped_expired_total": "MQTT 5 messages dropped because their expiry interval passed before sending.",
    "broker_dropped_too_large_total": "Messages dropped because they exceeded a client's Maximum Packet Size.",
    "broker_slow_consumers_total": "Connections aborted because their outbox stayed full without acknowledgements.",
    "broker_unread_cutoffs_total": "Connections aborted for not reading the answers to what they sent (PINGRESP, acks).",
    "broker_delayed_refusals_total": "Refused logins (bad credentials, malformed CONNECT) answered after broker.refusal_delay_ms.",
    "broker_paced_total": "Times a connection was read more slowly for sending packets over its rate.",
    "bridge_backlog": "Messages the bridge received and has not finished handling (its lag).",
    "bridge_ingress_waiting_bytes": "Payload bytes waiting in the bridge's ingress queues.",
    "bridge_ingress_refused_total": "Messages the bridge's ingress turned away while full (the broker retries).",
    "bridge_rate_limited_total": "Commands refused by a per-user rate limit.",
    "bridge_error_replies_silenced_total": "Error replies not sent because the user was over their error-reply limit.",
    "bridge_commands_total": "Commands the bridge handled.",
    "bridge_sends_total": "Messages stored and acknowledged to their sender.",
    "bridge_retries_total": "Sends answered from an earlier store (a client's retry).",
    "bridge_send_errors_total": "Sends answered with an error ack.",
    "bridge_rpcs_total": "RPC requests handled.",
    "bridge_rpc_errors_total": "RPC requests answered with an error.",
    "bridge_deliveries_total": "Publishes the bridge handed to the broker.",
    "message_batches_total": "Group commits of the message store.",
    "callbacks_before_calls_total": "before_* callback requests made (docs/callbacks.md).",
    "callbacks_before_allowed_total": "before_* callbacks answered allow.",
    "callbacks_before_refused_total": "before_* callbacks answered refuse.",
    "callbacks_before_replaced_total": "before_* callbacks answered replace.",
    "callbacks_before_failures_total": "before_* callbacks without a valid answer in time (on_failure applied).",
    "push_outbox_depth": "Push jobs waiting in the outbox.",
    "push_queued_total": "Push jobs queued.",
    "push_sent_total": "Pushes a provider accepted.",
    "push_retried_total": "Push attempts that failed and were scheduled again.",
    "push_dropped_total": "Push jobs given up after their last attempt.",
    "push_invalid_targets_total": "Push targets removed because their provider called them invalid.",
    "push_deferred_total": "Push jobs put back because their webhook host was at its concurrency cap.",
    "callbacks_pending": "Callback events waiting in the outbox (every endpoint's).",
    "callbacks_delivered_total": "Callback events an endpoint took (2xx).",
    "callbacks_retries_total": "Callback POSTs that failed and were scheduled again.",
    "callbacks_failed_total": "Callback events given up after callbacks.outbox.max_attempts or max_age_s.",
    "callbacks_dropped_total": "Callback events dropped unsent: their endpoint had callbacks.outbox.max_pending waiting.",
    "previews_requested_total": "Text messages (and edits) with a link handed to link previews.",
    "previews_cache_hits_total": "Link previews answered from the cache.",
    "previews_fetched_total": "Link preview fetches that gave a preview.",
    "previews_failed_total": "Link preview fetches that gave none (refused, an error, not HTML, nothing to show).",
    "previews_rate_limited_total": "Links not previewed: the user's or the global fetch rate was used up.",
    "previews_dropped_total": "Links not previewed: the queue of waiting previews was full.",
    "previews_sent_total": "Link previews handed to the delivery.",
    "search_indexed_total": "Documents added to or removed from the search index.",
    "search_backlog": "Stored messages and recalls the search index has not taken yet.",
    "search_up": "1 while the search backend answers, else 0.",
    "worker_restarts_total": "Times the background worker process (push, search indexing) was started again.",
}


def help_of(name: str) -> str:
    return HELP.get(name) or f"imgate's {name} (no description yet: see imgate/metrics.py HELP)."


class SnapshotCollector(Collector):
    """The app's own counters and gauges, as metric families: whatever snapshot it was last given
    (``update``); ``Metrics.render`` gives it a fresh one right before each scrape."""

    def __init__(self) -> None:
        self._snapshot: Mapping[str, float] = {}

    def update(self, snapshot: Mapping[str, float]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return self._families(self._snapshot)

    @staticmethod
    def _families(snapshot: Mapping[str, float]) -> Iterator[Metric]:
        for name, value in sorted(snapshot.items()):
            if name.endswith("_total"):  # the family adds "_total" back to its sample
                yield CounterMetricFamily(PREFIX + name.removesuffix("_total"), help_of(name), value=value)
            else:
                yield GaugeMetricFamily(PREFIX + name, help_of(name), value=value)


class Metrics:
    """One process's metrics; also the bridge's ``Timings`` (``bridge.runner``)."""

    def __init__(self, *, role: str = "all", version: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.send_ack_seconds = Histogram(
            PREFIX + "send_ack_seconds",
            "Time from the bridge taking a message off its ingress to its sender's ack being handed to the broker.",
            registry=self.registry, buckets=LATENCY_BUCKETS)
        self.rpc_seconds = Histogram(
            PREFIX + "rpc_seconds",
            "Time from the bridge taking an RPC request off its ingress to its reply being handed to the broker.",
            ["method"], registry=self.registry, buckets=LATENCY_BUCKETS)
        # A method's series appears with its first call: 16 methods of 16 samples each, present
        # from the start, would be most of a scrape's text and of its time (CPU on the event loop).
        self._rpc_by_method: dict[str, Histogram] = {}
        self.snapshot = SnapshotCollector()
        self.registry.register(self.snapshot)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        Info(PREFIX + "build", "The imgate version and the role of this process (all: everything in one).",
             registry=self.registry).info({"version": version or _version(), "role": role})

    def observe_send(self, seconds: float) -> None:
        self.send_ack_seconds.observe(seconds)

    def observe_rpc(self, method: str, seconds: float) -> None:
        child = self._rpc_by_method.get(method)
        if child is None:  # a method's first call; label values (and keys here) only from the known set
            if method in METHODS:
                child = self._rpc_by_method[method] = self.rpc_seconds.labels(method)
            else:
                child = self.rpc_seconds.labels(OTHER_METHOD)
        child.observe(seconds)

    def send_ack_buckets(self) -> dict[str, list[float] | float]:
        """The send-ack latency histogram as it stands: ``le`` (the buckets' upper bounds, in
        seconds; +Inf left out, as JSON has no infinity), ``counts`` (cumulative, as Prometheus
        counts them), ``count`` (all, the +Inf bucket) and ``sum`` since the start. A reader takes the difference of two
        snapshots for the quantiles of an interval (the operator console does)."""
        bounds: list[float] = []
        counts: list[float] = []
        total, seconds = 0.0, 0.0
        for metric in self.send_ack_seconds.collect():
            for sample in metric.samples:
                if sample.name.endswith("_bucket") and sample.labels["le"] != "+Inf":
                    bounds.append(float(sample.labels["le"]))
                    counts.append(sample.value)
                elif sample.name.endswith("_count"):
                    total = sample.value
                elif sample.name.endswith("_sum"):
                    seconds = sample.value
        return {"le": bounds, "counts": counts, "count": total, "sum": seconds}

    def render(self, snapshot: Mapping[str, float]) -> bytes:
        """The Prometheus text exposition with ``snapshot`` (``App.metrics()``) as the app's
        counters and gauges. Synchronous on purpose: with no await between giving the collector
        the snapshot and writing the text, concurrent scrapes cannot mix. It is all in memory (the
        process collector reads /proc, which is no disk IO): about 2-3 ms of CPU for a scrape with
        a handful of RPC methods seen, once per scrape interval; a thread would not shorten the
        event loop's pause, as formatting holds the GIL."""
        self.snapshot.update(snapshot)
        return generate_latest(self.registry)


def _version() -> str:
    try:
        return metadata.version("imgate")
    except metadata.PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown"
