"""A registry entry a proxy refuses is visible where an operator looks: ``skynet status``, the dashboard, the metrics.

Real nginx (Debian's) rendering the registry on moto's server, as in ``test_proxy.py``; the proxy is
registered in the rp layer as a proxy instance is, so its heartbeat can be replayed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from skynet_tasks import names
from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.dynamo import to_attr
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer, free_port
from skynet_tasks.monitor.data import MonitorData
from skynet_tasks.monitor.metrics import make_registry
from skynet_tasks.proxy.nginx import NginxControl
from skynet_tasks.proxy.sync import RpSync
from skynet_tasks.queues import Queues
from skynet_tasks.registry import MAX_REFUSAL_CHARS, MAX_REFUSED_SHOWN, Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.status import collect_status
from skynet_tasks.taskruns import TaskRuns

pytestmark = pytest.mark.timeout(90)

ENV = "local"


def endpoint(instance_id: str, port: int, address: str = "127.0.0.1", group: str = "local-api") -> Endpoint:
    return Endpoint(instance_id=instance_id, group=group, address=address, port=port, release="r1",
                    health="healthy", heartbeat=time.time())


@dataclass
class Proxy:
    aws: Aws
    registry: Registry
    sync: RpSync
    proxy: Endpoint

    def heartbeat(self) -> None:
        """What the proxy's own heartbeat writes: its whole entry, afresh."""
        self.registry.register(ENV, "rp", endpoint(self.proxy.instance_id, self.proxy.port, group="local-rp"))

    def shown(self) -> Endpoint:
        found = self.registry.find(ENV, self.proxy.instance_id)
        assert found is not None
        return found[1]

    def status(self) -> dict:
        """What ``skynet status --json`` prints (its text form prints each of ``alarms`` as a line)."""
        return collect_status(Ledger(self.aws.dynamodb, names.state_table(ENV)), self.registry, ENV, 60)

    def status_line(self) -> dict:
        groups = {g["name"]: g for g in self.status()["groups"]}
        return next(i for i in groups["local-rp"]["instances"] if i["id"] == self.proxy.instance_id)

    def dashboard(self) -> MonitorData:
        """What the dashboard (its pages, JSON API and metrics) reads."""
        resources = resolve(self.aws, ENV)
        return MonitorData(Ledger(self.aws.dynamodb, resources.state_table), self.registry, Queues(self.aws.sqs),
                           ArtifactStore(self.aws.s3, resources.repo_bucket),
                           TaskRuns(self.aws.dynamodb, resources.state_table), ENV, 60)

    def metrics(self) -> str:
        return generate_latest(make_registry(self.dashboard())[0]).decode()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    server = MotoServer.start()
    try:
        aws = aws_for(server.environment())
        bootstrap_env(aws, resolve(aws, ENV), ["local-api", "local-rp"])
        ledger = Ledger(aws.dynamodb, names.state_table(ENV))
        for group in ("local-api", "local-rp"):
            ledger.ensure_group(group, "", "")
        registry = Registry(aws.dynamodb, names.endpoints_table(ENV))
        port = free_port()
        rp = endpoint("rp-1", port, group="local-rp")
        registry.register(ENV, "rp", rp)
        control = NginxControl(Path(tmp_path_factory.mktemp("rp")), listen_port=port, listen_address="127.0.0.1")
        # Entries stay fresh for the whole module (300 s), however slowly a loaded machine runs its tests.
        sync = RpSync(registry, ENV, 300, control, port, "127.0.0.1", instance_id="rp-1")
        registry.register(ENV, "api", endpoint("api-1", 9101))
        sync.start()
        yield Proxy(aws, registry, sync, rp)
        control.stop()
    finally:
        server.stop()


def test_a_refused_entry_is_named_in_status_dashboard_and_metrics_while_the_others_render(proxy):
    # Given a proxy that routes to api-1, and no refusal to show
    assert proxy.shown().refused_count == 0 and "refused_count" not in proxy.status_line()

    # When an entry nginx cannot parse and a good newcomer register, and the proxy is told
    proxy.registry.register(ENV, "api", endpoint("api-zoned", 9102, address="fe80::1%eth0"))
    proxy.registry.register(ENV, "api", endpoint("api-2", 9103))
    result = proxy.sync.sync_once()

    # Then the others render...
    assert result.ok and "127.0.0.1:9103" in proxy.sync.control.conf.read_text()
    assert "fe80" not in proxy.sync.control.conf.read_text()
    # ...and the refused one is named in the proxy's registry entry, skynet status, the dashboard and the metrics
    reason = "api/api-zoned: address is not an IP address nginx can use"
    (refused,) = proxy.shown().refused_entries
    assert refused.startswith(reason) and proxy.shown().refused_count == 1
    line = proxy.status_line()
    assert line["refused_count"] == 1 and line["refused_entries"][0].startswith(reason)
    (warning,) = [a for a in proxy.status()["alarms"] if "rp-1" in a]
    assert warning.startswith(f"WARNING: proxy rp-1 leaves 1 registry entry out of its configuration: {reason}")
    dashboard = next(i for i in proxy.dashboard().instances() if i["id"] == "rp-1")
    assert dashboard["refused_entries"][0].startswith(reason)
    metrics = proxy.metrics()
    assert 'skynet_proxy_refused_entries{env="local",instance="rp-1"} 1.0' in metrics
    assert 'skynet_proxy_refused_entry{entry="api/api-zoned",env="local",instance="rp-1"} 1.0' in metrics

    # When the proxy's heartbeat rewrites its entry, Then the refusal still shows
    proxy.heartbeat()
    assert proxy.shown().refused_count == 1


def test_a_refusal_found_by_the_poll_alone_shows_and_clears_when_the_entry_is_fixed(proxy):
    # Given a second bad entry, found by the slow poll (no notification, the configuration unchanged)
    proxy.registry.register(ENV, "api", endpoint("api-port", 70000))
    proxy.sync.sync_once(publish=False)
    assert {r.split(":")[0] for r in proxy.shown().refused_entries} == {"api/api-zoned", "api/api-port"}

    # When both are fixed or gone, Then the proxy shows no refusal any more, anywhere
    proxy.registry.deregister(ENV, "api", "api-zoned")
    proxy.registry.register(ENV, "api", endpoint("api-port", 9104))
    proxy.sync.sync_once(publish=False)
    assert proxy.shown().refused_count == 0 and proxy.shown().refused_entries == ()
    assert "refused_count" not in proxy.status_line() and proxy.status()["alarms"] == []
    assert "skynet_proxy_refused_entry{" not in proxy.metrics()


def test_a_proxy_that_leaves_takes_its_refusals_with_it(proxy):
    proxy.registry.register(ENV, "api", endpoint("api-bad", 0))
    proxy.sync.sync_once()
    assert proxy.shown().refused_count == 1

    proxy.registry.deregister(ENV, "rp", "rp-1")

    (rp_item,) = [r for r in proxy.registry.records(ENV) if r["layer"] == "rp"]
    assert "rp-1" not in rp_item.get("refused", {})
    assert not proxy.registry.record_refused(ENV, "rp", "rp-1", ["api/x: y"])  # not registered: nothing written


def test_what_an_instance_wrote_as_its_refusals_is_bounded_when_read(proxy):
    # The rp item is written by instances: a hostile one may write any list or count beside its entry.
    proxy.heartbeat()
    proxy.registry.record_refused(ENV, "rp", "rp-1", [])  # the map exists
    proxy.aws.dynamodb.update_item(
        TableName=names.endpoints_table(ENV), Key={"env": {"S": ENV}, "layer": {"S": "rp"}},
        UpdateExpression="SET refused.#id = :r", ExpressionAttributeNames={"#id": "rp-1"},
        ExpressionAttributeValues={":r": to_attr({"entries": [f"api/i-{n}: " + "x" * 500 for n in range(300)],
                                                  "count": 300})})

    shown = proxy.shown()

    assert shown.refused_count == 300 and len(shown.refused_entries) == MAX_REFUSED_SHOWN
    assert all(len(entry) <= MAX_REFUSAL_CHARS for entry in shown.refused_entries)
    for hostile in ({"entries": "not a list", "count": 3}, {"entries": ["a/b: c"], "count": "many"}):
        proxy.aws.dynamodb.update_item(
            TableName=names.endpoints_table(ENV), Key={"env": {"S": ENV}, "layer": {"S": "rp"}},
            UpdateExpression="SET refused.#id = :r", ExpressionAttributeNames={"#id": "rp-1"},
            ExpressionAttributeValues={":r": to_attr(hostile)})
        assert proxy.shown().refused_count == len(proxy.shown().refused_entries) <= 1
    proxy.registry.record_refused(ENV, "rp", "rp-1", [])
    assert proxy.shown().refused_count == 0
