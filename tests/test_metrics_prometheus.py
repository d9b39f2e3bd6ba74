"""A real Prometheus (Debian's package) scrapes the dashboard, and promtool accepts what it serves.

No cluster: the rollout is driven through the real conductor steps and acknowledgements against
moto's server (tests/metricskit.py), which is what the ledger's counters see on a cluster too.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from metricskit import PROMTOOL, Prometheus, drive_rollout, served
from monitorkit import TOKEN, seeded_env

from skynet_tasks.ledger.counters import HANDOFF_BUCKETS
from skynet_tasks.monitor.grafana import dashboard_json

pytestmark = pytest.mark.timeout(120)

GROUP = "local-scraped"
HANDOFF = 0.05  # each instance acknowledges its turn 50 ms after the conductor decided it


@pytest.fixture(scope="module")
def env():
    with seeded_env() as seeded:
        drive_rollout(seeded.ledger, GROUP, "r20261201-000000-cccccc", ("p-1", "p-2", "p-3", "p-4"), HANDOFF)
        yield seeded


def test_promtool_accepts_the_metrics_the_dashboard_serves(env):
    text = env.app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data()

    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30)

    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    assert b"skynet_ticket_handoff_latency_seconds_bucket" in text


@pytest.fixture(scope="module")
def prometheus(env, tmp_path_factory):
    with served(env.app) as url:
        server = Prometheus(tmp_path_factory.mktemp("prometheus"), url, TOKEN)
        server.start()
        try:
            server.query('up{job="skynet"} == 1')  # one scrape done
            yield server
        finally:
            server.stop()


def test_prometheus_scrapes_a_nonzero_handoff_after_a_rollout(env, prometheus):
    # The hand-offs as the ledger stored them: the conductor's decision of each turn to its acknowledgement.
    tickets = env.ledger.rollout_view("r20261201-000000-cccccc")["tickets"]
    stored = [t["acknowledged_at"] - t["started_at"] for t in tickets if t["number"] > 1]

    collector = prometheus.query("skynet_collector_up")
    count = prometheus.query(f'skynet_ticket_handoff_latency_seconds_count{{group="{GROUP}"}}')
    total = prometheus.query(f'skynet_ticket_handoff_latency_seconds_sum{{group="{GROUP}"}}')
    p95 = prometheus.query(f'histogram_quantile(0.95, skynet_ticket_handoff_latency_seconds_bucket{{group="{GROUP}"}})')
    completed = prometheus.query(f'skynet_rollouts_total{{group="{GROUP}",state="completed"}}')

    assert float(collector[0]["value"][1]) == 1.0
    assert float(count[0]["value"][1]) == 3  # tickets 2, 3 and 4
    assert float(total[0]["value"][1]) == pytest.approx(sum(stored), abs=1e-3)
    assert float(total[0]["value"][1]) >= 3 * HANDOFF  # never the 0 a hand-off read from started_at gave
    # Prometheus interpolates inside the bucket holding the slowest of three: above its lower bound, at most its upper.
    slowest = max(stored)
    bounds = [0.0, *HANDOFF_BUCKETS]
    upper = next(b for b in HANDOFF_BUCKETS if slowest <= b)
    assert bounds[bounds.index(upper) - 1] <= float(p95[0]["value"][1]) <= upper
    assert float(completed[0]["value"][1]) == 1.0


def test_every_grafana_panel_queries_series_prometheus_scraped_from_the_dashboard(prometheus):
    scraped = set(prometheus.api("label/__name__/values"))
    panels = [p for p in json.loads(dashboard_json())["panels"] if p["type"] != "row"]
    queried = {name for p in panels for t in p["targets"] for name in re.findall(r"\bskynet_[a-z_]+", t["expr"])}

    assert queried and queried <= scraped, queried - scraped
    for panel in panels:
        for target in panel["targets"]:
            # With every env and group chosen, as Grafana sends it: Prometheus accepts the query.
            expr = target["expr"].replace("$env", ".*").replace("$group", ".*").replace("$__rate_interval", "1m")
            prometheus.api("query", query=expr.replace("$__range", "5m"))
