"""Prometheus metrics of one env (names prefixed ``skynet_``), read at each scrape.

Counters and histograms of rollouts come from the counters the conductor keeps in the state
table (``skynet_tasks.ledger.counters``): they only ever grow, whichever dashboard serves them
and however often it is scraped. Gauges (queue depths, instances, the rollouts in each group's
line) are read fresh. A failed read yields ``skynet_collector_up 0`` and nothing else of the env,
so a scrape never shows a partial, misleading picture.

Trust: the values come from the state table, the registry and SQS (written by this env's
instances); they become label values and numbers only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from skynet_tasks.ledger.counters import CounterStore, cumulative_buckets
from skynet_tasks.monitor.data import MonitorData
from skynet_tasks.states import RolloutState

log = logging.getLogger(__name__)

# (metric name, help, the histogram in the counters item)
HISTOGRAMS = (
    ("skynet_ticket_handoff_latency_seconds",
     "Seconds from the conductor deciding a ticket's turn (on the previous ticket's report) to its instance "
     "acknowledging it", "handoff"),
    ("skynet_update_duration_seconds",
     "Seconds from an instance acknowledging its ticket to the conductor receiving its report", "update"),
    ("skynet_rollout_duration_seconds", "Seconds from a rollout's creation to its completion", "rollout"),
)


class EnvCollector(Collector):
    """The env's metrics, read on each scrape; ``skynet_collector_up`` says whether the read worked."""

    def __init__(self, data: MonitorData) -> None:
        self.data = data
        self.counters = CounterStore(data.ledger.db, data.ledger.table)

    def collect(self) -> Iterator[Metric]:
        """Every metric of the env as read now, then ``skynet_collector_up`` (0 and nothing else if a read failed)."""
        up = GaugeMetricFamily("skynet_collector_up", "1 if the env's state could be read at this scrape, else 0",
                               labels=["env"])
        try:
            families = [*self._rollouts(), *self._queues(), *self._instances(time.time())]
        except Exception:  # a failed read is reported as a sample, not as a failed scrape
            log.exception("metrics of env %s could not be read", self.data.env)
            up.add_metric([self.data.env], 0.0)
            yield up
            return
        yield from families
        up.add_metric([self.data.env], 1.0)
        yield up

    def _rollouts(self) -> list[Metric]:
        env = self.data.env
        counted = self.counters.counters()
        rollouts = CounterMetricFamily("skynet_rollouts_total", "Times a rollout of the group entered a state "
                                       "(running: joined the line or resumed)", labels=["env", "group", "state"])
        failures = CounterMetricFamily("skynet_ticket_failures_total", "Tickets that failed (a report or a "
                                       "passed deadline)", labels=["env", "group"])
        histograms = [(HistogramMetricFamily(name, text, labels=["env", "group"]), kind)
                      for name, text, kind in HISTOGRAMS]
        in_line = GaugeMetricFamily("skynet_rollouts_in_line", "Rollouts holding a place in the group's line, "
                                    "by state", labels=["env", "group", "state"])
        for group, counts in sorted(counted.items()):
            for state in RolloutState:  # every state, zero included, so that increase() sees the first one
                rollouts.add_metric([env, group, str(state)], counts.get(f"rollouts:{state}", 0.0))
            failures.add_metric([env, group], counts.get("ticket_failures", 0.0))
            for family, kind in histograms:
                family.add_metric([env, group], cumulative_buckets(counts, kind), counts.get(f"{kind}:sum", 0.0))
            states = {str(state): 0 for state in RolloutState if not state.finished}
            for rollout_id in self.data.ledger.group_info(group).get("line", []):
                found = str((self.data.ledger.rollout_item(rollout_id) or {}).get("state", ""))
                if found in states:
                    states[found] += 1
            for name, count in states.items():
                in_line.add_metric([env, group, name], float(count))
        return [rollouts, failures, *(family for family, _ in histograms), in_line]

    def _queues(self) -> list[Metric]:
        env = self.data.env
        depth = GaugeMetricFamily("skynet_queue_messages", "Messages in a queue, by kind",
                                  labels=["env", "queue", "kind"])
        for queue in self.data.queue_depths():
            depth.add_metric([env, queue.name, "visible"], float(queue.visible))
            depth.add_metric([env, queue.name, "in_flight"], float(queue.in_flight))
            depth.add_metric([env, queue.name, "delayed"], float(queue.delayed))
            if queue.dead_letter is not None:
                depth.add_metric([env, queue.name, "dead_letter"], float(queue.dead_letter))
        # Its own gauge, beside the queue depths: an alert rule needs only ``skynet_dead_letters > 0``.
        dead = GaugeMetricFamily("skynet_dead_letters", "Maintenance events in a group's dead-letter queue",
                                 labels=["env", "group", "queue"])
        for letters in self.data.dead_letters():
            dead.add_metric([env, letters.group, letters.queue], float(letters.messages))
        return [depth, dead]

    def _instances(self, now: float) -> list[Metric]:
        env = self.data.env
        instances = GaugeMetricFamily("skynet_instances", "Live instances by group, release and health",
                                      labels=["env", "group", "release", "health"])
        heartbeat = GaugeMetricFamily("skynet_instance_heartbeat_timestamp_seconds",
                                      "Unix time of an instance's last heartbeat (stale ones included, until "
                                      "pruned)", labels=["env", "group", "instance"])
        counted: dict[tuple[str, str, str], int] = {}
        listed = self.data.instances(now)
        for instance in listed:
            heartbeat.add_metric([env, str(instance["group"]), instance["id"]], float(instance["heartbeat"]))
            if instance["stale"]:
                continue
            key = (str(instance["group"]), str(instance["release"] or ""), str(instance["health"]))
            counted[key] = counted.get(key, 0) + 1
        for (group, release, health), count in sorted(counted.items()):
            instances.add_metric([env, group, release, health], float(count))
        return [instances, heartbeat, *refusal_metrics(env, listed)]


def refusal_metrics(env: str, instances: list[dict[str, Any]]) -> tuple[Metric, ...]:
    """For each live proxy that refuses registry entries: how many, and one sample naming each."""
    counts = GaugeMetricFamily("skynet_proxy_refused_entries", "Registry entries a proxy leaves out of its "
                               "configuration (invalid values)", labels=["env", "instance"])
    named = GaugeMetricFamily("skynet_proxy_refused_entry", "1 for each registry entry a proxy refuses "
                              "(the first 5 per proxy), labelled layer/instance", labels=["env", "instance", "entry"])
    for instance in instances:
        if instance["stale"] or not instance.get("refused_count"):
            continue
        counts.add_metric([env, instance["id"]], float(instance["refused_count"]))
        for refusal in instance.get("refused_entries") or ():
            named.add_metric([env, instance["id"], str(refusal).split(":", 1)[0]], 1.0)
    return counts, named


def make_registry(data: MonitorData) -> tuple[CollectorRegistry, Counter]:
    """A registry of this dashboard only (no process globals), and its counter of operator actions."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EnvCollector(data))
    actions = Counter("skynet_operator_actions", "Operator actions taken through this dashboard",
                      ["action", "outcome"], registry=registry)
    return registry, actions
