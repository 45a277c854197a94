"""/metrics: the Prometheus exposition of one process (imgate/metrics.py), the bridge's latency
timings (bridge/runner.py's ``Timings``), and the whole path on the running platform."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bridge.router import Ignore, Publish, Reply, Rpc, Send
from bridge.runner import Bridge
from imgate.app import App
from imgate.metrics import HELP, Metrics
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import WAIT, connect
from tests.test_layering import imports_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


def families(text: str) -> dict[str, Any]:
    """Parsed exposition: family name (a counter's without ``_total``) -> family."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str) -> list[Sample]:
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def value(text: str, name: str, **labels: str) -> float:
    found = [s.value for s in samples(text) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


# ---- Metrics on its own ----------------------------------------------------------------------
def test_render_turns_the_snapshot_into_families_with_help() -> None:
    snapshot = {"bridge_sends_total": 3, "connections": 2, "push_outbox_depth": 0, "made_up_total": 7,
                "made_up_gauge": 0.5}
    text = Metrics(role="all", version="9.9.9").render(snapshot).decode()
    parsed = families(text)
    # The names dashboards use are those of the hand-written format this replaced.
    assert "# TYPE imgate_bridge_sends_total counter" in text and "# TYPE imgate_connections gauge" in text
    assert parsed["imgate_bridge_sends"].type == "counter"
    assert parsed["imgate_bridge_sends"].documentation == HELP["bridge_sends_total"]
    assert value(text, "imgate_bridge_sends_total") == 3
    assert parsed["imgate_connections"].type == "gauge" and value(text, "imgate_connections") == 2
    assert parsed["imgate_push_outbox_depth"].documentation == HELP["push_outbox_depth"]
    # A name without an entry in the table is still exported, with a generic help.
    assert parsed["imgate_made_up"].type == "counter" and value(text, "imgate_made_up_total") == 7
    assert parsed["imgate_made_up_gauge"].type == "gauge" and parsed["imgate_made_up_gauge"].documentation
    assert all(f.documentation for f in parsed.values())
    assert value(text, "imgate_build_info", version="9.9.9", role="all") == 1
    assert "python_info" in parsed
    assert any(name.startswith("process_") for name in parsed), sorted(parsed)
    assert parsed["imgate_send_ack_seconds"].type == "histogram" and value(text, "imgate_send_ack_seconds_count") == 0


def test_each_render_shows_its_own_snapshot() -> None:
    metrics = Metrics()
    assert value(metrics.render({"bridge_sends_total": 1}).decode(), "imgate_bridge_sends_total") == 1
    second = metrics.render({"connections": 4}).decode()
    assert value(second, "imgate_connections") == 4 and "imgate_bridge_sends" not in families(second)


def test_histograms_and_rpc_method_labels() -> None:
    metrics = Metrics(role="bridge")
    metrics.observe_send(0.003)
    metrics.observe_send(7.0)  # past the last bucket: counted in +Inf only
    metrics.observe_rpc("history", 0.02)
    metrics.observe_rpc("history", 0.0001)
    metrics.observe_rpc("no such method, client text", 0.01)  # never a label value
    text = metrics.render({}).decode()
    assert value(text, "imgate_send_ack_seconds_count") == 2
    assert value(text, "imgate_send_ack_seconds_bucket", le="0.005") == 1
    assert value(text, "imgate_send_ack_seconds_bucket", le="5.0") == 1
    assert value(text, "imgate_send_ack_seconds_bucket", le="+Inf") == 2
    assert value(text, "imgate_send_ack_seconds_sum") == pytest.approx(7.003)
    assert value(text, "imgate_rpc_seconds_count", method="history") == 2
    assert value(text, "imgate_rpc_seconds_bucket", method="history", le="0.0005") == 1
    assert value(text, "imgate_rpc_seconds_count", method="other") == 1
    methods = {s.labels["method"] for s in samples(text) if s.name == "imgate_rpc_seconds_count"}
    assert methods == {"history", "other"}  # a method's series appears with its first call
    assert [s.labels["role"] for s in samples(text) if s.name == "imgate_build_info"] == ["bridge"]


def test_each_metrics_has_its_own_registry() -> None:
    """Many Apps run in one test process (and one process serves one /metrics): nothing is
    shared between two Metrics, and nothing goes to the library's global registry."""
    one, two = Metrics(), Metrics()
    one.observe_send(0.01)
    one.observe_rpc("search", 0.01)
    assert value(one.render({}).decode(), "imgate_send_ack_seconds_count") == 1
    other = two.render({}).decode()
    assert value(other, "imgate_send_ack_seconds_count") == 0
    assert not [s for s in samples(other) if s.name == "imgate_rpc_seconds_count"]
    assert not [name for name in REGISTRY._names_to_collectors if name.startswith("imgate_")]


def test_the_bridge_imports_no_metrics_library() -> None:
    """The bridge reports timings through its own ``Timings`` protocol; imgate/metrics.py is
    the one place that knows prometheus_client (besides the admin API's content type)."""
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "bridge").rglob("*.py"))
        for module in imports_of(path)
        if module.split(".")[0] == "prometheus_client"
    }
    assert offending == set()


# ---- the bridge's timings --------------------------------------------------------------------
class _Recorder:
    """Timings that remember what was published when each observation came."""

    def __init__(self, transport: _Transport) -> None:
        self.transport = transport
        self.calls: list[tuple[str, str | None, int]] = []

    def observe_send(self, seconds: float) -> None:
        assert 0 <= seconds < WAIT
        self.calls.append(("send", None, len(self.transport.published)))

    def observe_rpc(self, method: str, seconds: float) -> None:
        assert 0 <= seconds < WAIT
        self.calls.append(("rpc", method, len(self.transport.published)))


class _Transport:
    """Offers the given messages to the ingress once, then records publishes."""

    def __init__(self, topics: list[str]) -> None:
        self.ready = asyncio.Event()
        self.topics = topics
        self.published: list[str] = []

    async def run(self, filters: list[str], ingress: Any) -> None:
        for topic in self.topics:
            assert ingress.offer(topic, b"{}")
        self.ready.set()
        await asyncio.Event().wait()

    async def publish(self, topic: str, payload: bytes, qos: int, props: Any = None) -> None:
        self.published.append(topic)

    async def publish_many(self, items: list[Any]) -> None:
        self.published.extend(item[0] for item in items)


def _command(kind: type, **attrs: Any) -> Any:
    cmd = MagicMock(spec=kind)  # isinstance() sees ``kind``; independent of its fields
    cmd.lane_key = "alice"
    for name, attr in attrs.items():
        setattr(cmd, name, attr)
    return cmd


async def test_the_bridge_times_sends_and_rpcs_once_their_publishes_are_handed_over() -> None:
    by_topic = {
        "im/alice/out/msg": _command(Send),
        "im/alice/out/rpc": _command(Rpc, method="history"),
        "im/alice/out/rpc/phone": _command(Reply),  # answered at once (bad input): not timed
        "im/alice/out/event": Ignore("not for the bridge"),  # never reaches a lane
        "im/bob/out/msg": _command(Send, fails=True),  # the dispatcher raises: logged, not timed
    }
    transport = _Transport(list(by_topic))
    timings = _Recorder(transport)
    router = MagicMock()
    router.route.side_effect = lambda topic, payload, props: by_topic[topic]
    router.topics.subscriptions.return_value = []
    throttle = MagicMock()
    throttle.check.side_effect = lambda key, cmd: cmd
    dispatcher = MagicMock()
    dispatcher.before = None  # no before_* callbacks: commands go straight to the lanes

    async def handle(cmd: Any) -> list[Publish]:
        if getattr(cmd, "fails", False) is True:
            raise RuntimeError("a bug in a handler")
        return [Publish("ack", b"{}"), Publish("delivery", b"{}")] if isinstance(cmd, Send) \
            else [Publish("reply", b"{}")]

    dispatcher.handle.side_effect = handle
    bridge = Bridge(transport, router, dispatcher, throttle, lanes=1, timings=timings)  # type: ignore[arg-type]
    task = asyncio.create_task(bridge.run())
    try:
        async with asyncio.timeout(WAIT):
            await transport.ready.wait()
            await bridge.ingress.wait_idle()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # One lane: in order. Each observation comes after its command's publishes were handed over.
    assert transport.published == ["ack", "delivery", "reply", "reply"]
    assert timings.calls == [("send", None, 2), ("rpc", "history", 3)]


# ---- the running platform ---------------------------------------------------------------------
async def test_metrics_endpoint_on_the_running_platform(app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("dan", "eve")
    token = await users.token("dan")
    async with connect(app.mqtt_port, "dan", "phone", token) as dan:
        await dan.send_and_ack("m1", "eve")
        assert (await dan.result("conversations"))["items"]
        # The bridge (in-process transport) observes a command right after handing its
        # publishes to the broker, before the client can have the ack or the reply.
        response = await api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    parsed = families(text)
    assert all(f.documentation for f in parsed.values())
    # This app's own registry: exactly its one message, whatever other apps this process ran.
    assert parsed["imgate_send_ack_seconds"].type == "histogram"
    assert value(text, "imgate_send_ack_seconds_count") == 1
    assert 0 < value(text, "imgate_send_ack_seconds_sum") < WAIT
    assert value(text, "imgate_rpc_seconds_count", method="conversations") == 1
    assert any(name.startswith("process_") for name in parsed), sorted(parsed)
    assert [s.labels["role"] for s in samples(text) if s.name == "imgate_build_info"] == ["all"]
    # The counters and gauges as before, each with its own help text.
    assert "# TYPE imgate_bridge_sends_total counter" in text
    assert value(text, "imgate_bridge_sends_total") == 1
    assert value(text, "imgate_connections") >= 1
    for name in await app.metrics():
        assert name in HELP, f"{name}: add its help text to imgate.metrics.HELP"
        family = parsed[f"imgate_{name}".removesuffix("_total")]
        assert family.documentation == HELP[name]
        assert family.type == ("counter" if name.endswith("_total") else "gauge")
