"""The dashboard's Prometheus metrics: counters kept by the conductor's decisions, read at each scrape.

The counting itself (``ledger.counters.increments``) is pure and tested as data; the rest runs the
real conductor steps and acknowledgements against moto's server (tests/monitorkit.py's seeded env, no
cluster: tests/metricskit.py) and reads /metrics, then has a real Prometheus scrape it and promtool
check it.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace

import pytest
from metricskit import PROMTOOL, Prometheus, drive_rollout, served
from monitorkit import GROUP, TOKEN, seeded_env
from prometheus_client.parser import text_string_to_metric_families

from skynet_tasks.conductor import Decision, Group, Rollout, Ticket, UpdateReported
from skynet_tasks.ledger import Conflict
from skynet_tasks.ledger.counters import HANDOFF_BUCKETS, bucket_name, cumulative_buckets, increments
from skynet_tasks.ledger.table import rollout_pk
from skynet_tasks.monitor.grafana import dashboard_json
from skynet_tasks.states import RolloutState, TicketState
from skynet_tasks.step import decide_and_write_until_settled

pytestmark = pytest.mark.timeout(120)

BEARER = {"Authorization": f"Bearer {TOKEN}"}
SCRAPED = "local-scraped"
SCRAPED_ROLLOUT = "r20261201-000000-cccccc"
HANDOFF = 0.05  # each instance of SCRAPED acknowledges its turn 50 ms after the conductor decided it


# ---- the counting, as data ------------------------------------------------------------------
def _rollout(*tickets: Ticket, state: RolloutState = RolloutState.RUNNING) -> Rollout:
    return Rollout("r1", "g", "sha", state=state, created_at=100.0, canary="a", published=True, tickets=tickets)


def test_a_report_counts_the_update_and_the_handoff_before_it():
    before = _rollout(Ticket(1, "a", TicketState.DONE), Ticket(2, "b", TicketState.UPDATING, started_at=200.0,
                                                                 acknowledged_at=200.08))
    after = replace(before, tickets=(before.tickets[0], replace(before.tickets[1], state=TicketState.DONE,
                                                                 finished_at=203.08)))

    added = increments(Group("g", line=(before,)), Decision(Group("g"), touched=(after,), notes=("x",)))

    assert added["handoff:sum"] == pytest.approx(0.08)
    assert added[bucket_name("handoff", 0.08)] == 1 and bucket_name("handoff", 0.08) == "handoff:bucket:0.1"
    assert added["update:sum"] == pytest.approx(3.0) and added["update:bucket:5.0"] == 1
    assert "ticket_failures" not in added and not any(k.startswith("rollouts:") for k in added)


def test_the_handoff_runs_from_the_report_that_released_the_ticket_when_it_is_known():
    before = _rollout(Ticket(2, "b", TicketState.UPDATING, started_at=200.0, handed_at=199.9,
                             acknowledged_at=200.08))
    after = replace(before, tickets=(replace(before.tickets[0], state=TicketState.DONE, finished_at=203.0),))

    added = increments(Group("g", line=(before,)), Decision(Group("g"), touched=(after,), notes=("x",)))

    assert added["handoff:sum"] == pytest.approx(0.18)  # the report at 199.9, not the dispatch at 200.0


def test_the_canarys_ticket_has_no_handoff_and_a_deadline_failure_no_timings():
    canary = _rollout(Ticket(1, "a", TicketState.UPDATING, started_at=1.0, acknowledged_at=2.0))
    done = replace(canary, tickets=(replace(canary.tickets[0], state=TicketState.DONE, finished_at=5.0),))
    overdue = _rollout(Ticket(2, "b", TicketState.UPDATING, started_at=1.0))
    failed = replace(overdue, state=RolloutState.HALTED,
                     tickets=(replace(overdue.tickets[0], state=TicketState.FAILED, finished_at=400.0),))

    first = increments(Group("g", line=(canary,)), Decision(Group("g"), touched=(done,), notes=("x",)))
    late = increments(Group("g", line=(overdue,)), Decision(Group("g"), touched=(failed,), notes=("x",)))

    assert not any(k.startswith("handoff:") for k in first) and first["update:bucket:5.0"] == 1
    assert late == {"ticket_failures": 1, "rollouts:halted": 1}


def test_a_rollout_joining_the_line_and_completing_counts_its_states_and_duration():
    joined = increments(Group("g"), Decision(Group("g"), touched=(_rollout(),), notes=("x",)))
    running = _rollout(Ticket(1, "a", TicketState.DONE))
    completed = replace(running, state=RolloutState.COMPLETED, finished_at=145.0)

    ended = increments(Group("g", line=(running,)), Decision(Group("g"), touched=(completed,), notes=("x",)))

    assert joined == {"rollouts:running": 1}
    assert ended["rollouts:completed"] == 1 and ended["rollout:sum"] == 45.0 and ended["rollout:bucket:60.0"] == 1


def test_a_clock_behind_counts_a_zero_span_and_buckets_are_cumulative():
    before = _rollout(Ticket(2, "b", TicketState.UPDATING, started_at=10.0, acknowledged_at=9.5))
    after = replace(before, tickets=(replace(before.tickets[0], state=TicketState.DONE, finished_at=12.0),))

    added = increments(Group("g", line=(before,)), Decision(Group("g"), touched=(after,), notes=("x",)))
    buckets = cumulative_buckets({"handoff:bucket:0.025": 2, "handoff:bucket:1.0": 1, "handoff:bucket:+Inf": 1},
                                 "handoff")

    assert added["handoff:sum"] == 0.0 and added["handoff:bucket:0.025"] == 1
    assert buckets[0] == ("0.025", 2) and dict(buckets)["1.0"] == 3 and buckets[-1] == ("+Inf", 4)
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)


# ---- through the ledger and /metrics ------------------------------------------------------------
@pytest.fixture(scope="module")
def env():
    with seeded_env() as seeded:
        yield seeded


def scrape(env) -> dict[str, float]:
    """Every sample of /metrics as ``name{label="v",...}`` → value, labels sorted."""
    response = env.app.test_client().get("/metrics", headers=BEARER)
    assert response.status_code == 200
    out = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def test_a_rollout_shows_in_counters_and_histograms_that_survive_its_records(env):
    group = "local-metrics"
    drive_rollout(env.ledger, group, "r20261201-000000-aaaaaa", ("m-1", "m-2", "m-3"), handoff=0.05)
    at = f'env="local",group="{group}"'

    seen = scrape(env)
    # Its records gone (as the oldest rollouts fall out of "recent"), the counts stay.
    for item in env.ledger.query_all(rollout_pk("r20261201-000000-aaaaaa")):
        env.ledger.db.delete_item(TableName=env.ledger.table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}})
    again = scrape(env)

    assert seen[f'skynet_rollouts_total{{{at},state="running"}}'] == 1
    assert seen[f'skynet_rollouts_total{{{at},state="completed"}}'] == 1
    assert seen[f'skynet_rollouts_total{{{at},state="halted"}}'] == 0
    assert seen[f"skynet_ticket_failures_total{{{at}}}"] == 0
    # Tickets 2 and 3 were handed over (the canary's ticket 1 is nobody's hand-off), each >= 50 ms.
    assert seen[f"skynet_ticket_handoff_latency_seconds_count{{{at}}}"] == 2
    assert seen[f"skynet_ticket_handoff_latency_seconds_sum{{{at}}}"] >= 0.1
    assert seen[f'skynet_ticket_handoff_latency_seconds_bucket{{{at},le="0.025"}}'] == 0
    assert seen[f"skynet_update_duration_seconds_count{{{at}}}"] == 3
    assert seen[f"skynet_rollout_duration_seconds_count{{{at}}}"] == 1
    assert seen[f'skynet_rollouts_in_line{{{at},state="running"}}'] == 0
    assert seen['skynet_collector_up{env="local"}'] == 1
    assert {k: v for k, v in again.items() if group in k and "in_line" not in k} == \
        {k: v for k, v in seen.items() if group in k and "in_line" not in k}


def test_a_failed_ticket_counts_once_even_when_its_report_is_redelivered(env):
    group = "local-failing"
    rollout_id = "r20261201-000000-bbbbbb"
    drive_rollout(env.ledger, group, rollout_id, ("f-1", "f-2"), handoff=0.0, fail_last=True)
    at = f'env="local",group="{group}"'
    once = scrape(env)

    # The same report again (a redelivery), and a decision re-applied on the state it was taken on.
    again = UpdateReported(rollout_id, 2, "f-2", False, "boom")
    assert not decide_and_write_until_settled(env.ledger, group, again, {"f-1", "f-2"}).changed
    stale = env.ledger.load_group(group)
    halted = stale.line[0]
    with pytest.raises(Conflict):
        env.ledger.write_decision(replace(stale, version=stale.version - 1),
                                  Decision(stale, touched=(halted,), notes=("replayed",)))
    twice = scrape(env)

    assert once[f"skynet_ticket_failures_total{{{at}}}"] == 1
    assert once[f'skynet_rollouts_total{{{at},state="halted"}}'] == 1
    assert once[f'skynet_rollouts_in_line{{{at},state="halted"}}'] == 1
    assert {k: v for k, v in twice.items() if group in k} == {k: v for k, v in once.items() if group in k}


def test_heartbeats_are_timestamps_and_old_names_are_gone(env):
    seen = scrape(env)

    stamps = {k: v for k, v in seen.items() if k.startswith("skynet_instance_heartbeat_timestamp_seconds")}
    assert set(stamps) == {f'skynet_instance_heartbeat_timestamp_seconds{{env="local",group="{GROUP}",'
                           f'instance="api-{n}"}}' for n in (1, 2)}
    assert all(v > 1.7e9 for v in stamps.values())
    assert not any(k.startswith(("skynet_ticket_failures{", "skynet_rollouts{", "skynet_instance_heartbeat_age"))
                   for k in seen)


def test_a_failed_read_is_collector_up_zero_and_nothing_else(env, monkeypatch):
    from skynet_tasks.ledger.counters import CounterStore

    def unreachable(self):
        raise ConnectionError("state table unreachable")

    monkeypatch.setattr(CounterStore, "counters", unreachable)

    seen = scrape(env)

    assert {k: v for k, v in seen.items() if not k.startswith("skynet_operator_actions")} == \
        {'skynet_collector_up{env="local"}': 0.0}


# ---- a real Prometheus and promtool (Debian's prometheus package) ---------------------------------
def test_promtool_accepts_the_metrics_the_dashboard_serves(env, prometheus):
    text = env.app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data()

    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30)

    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    assert b"skynet_ticket_handoff_latency_seconds_bucket" in text


@pytest.fixture(scope="module")
def prometheus(env, tmp_path_factory):
    """A real Prometheus scraping the dashboard, after a rollout of ``SCRAPED`` whose instances each acknowledged
    their turn ``HANDOFF`` seconds after the conductor decided it."""
    drive_rollout(env.ledger, SCRAPED, SCRAPED_ROLLOUT, ("p-1", "p-2", "p-3", "p-4"), HANDOFF)
    with served(env.app) as url:
        server = Prometheus(tmp_path_factory.mktemp("prometheus"), url, TOKEN)
        server.start()
        try:
            server.query('up{job="skynet"} == 1')  # one scrape done
            yield server
        finally:
            server.stop()


def test_prometheus_scrapes_a_nonzero_handoff_after_a_rollout(env, prometheus):
    # The hand-offs as the ledger stored them: the report that released each turn to its acknowledgement.
    tickets = env.ledger.rollout_view(SCRAPED_ROLLOUT)["tickets"]
    stored = [t["acknowledged_at"] - t["handed_at"] for t in tickets if t["number"] > 1]

    collector = prometheus.query("skynet_collector_up")
    count = prometheus.query(f'skynet_ticket_handoff_latency_seconds_count{{group="{SCRAPED}"}}')
    total = prometheus.query(f'skynet_ticket_handoff_latency_seconds_sum{{group="{SCRAPED}"}}')
    p95 = prometheus.query(
        f'histogram_quantile(0.95, skynet_ticket_handoff_latency_seconds_bucket{{group="{SCRAPED}"}})')
    completed = prometheus.query(f'skynet_rollouts_total{{group="{SCRAPED}",state="completed"}}')

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
