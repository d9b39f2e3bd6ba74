"""Prometheus metrics of one env, computed from fresh reads at each scrape (names prefixed ``skynet_``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from skynet_tasks.monitor.data import MonitorData

log = logging.getLogger(__name__)

DURATION_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
HANDOFF_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECENT_ROLLOUTS = 20  # per group: what the histograms are computed over


def histogram_buckets(values: list[float], bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    """Cumulative buckets in prometheus_client's (upper bound, count) form, ending with +Inf."""
    out = [(str(bound), float(sum(v <= bound for v in values))) for bound in bounds]
    return out + [("+Inf", float(len(values)))]


class EnvCollector(Collector):
    """Reads the env on each scrape; a failed read yields no samples rather than a failed scrape."""

    def __init__(self, data: MonitorData) -> None:
        self.data = data

    def collect(self) -> Iterator[Metric]:
        """The env's metrics as read now: rollouts, queue depths, instances; a failed read ends them, logged."""
        try:
            yield from self._collect(time.time())
        except Exception:  # an observer must not break the scrape of the others
            log.exception("metrics of env %s could not be read", self.data.env)

    def _collect(self, now: float) -> Iterator[Metric]:
        env = self.data.env
        rollouts = self.data.rollouts(limit=RECENT_ROLLOUTS, now=now)
        durations = HistogramMetricFamily("skynet_rollout_duration_seconds",
                                          "Duration of finished recent rollouts, by group", labels=["env", "group"])
        handoffs = HistogramMetricFamily("skynet_ticket_handoff_latency_seconds",
                                         "Seconds from one ticket's end to the next instance's acknowledgement",
                                         labels=["env", "group"])
        failures = GaugeMetricFamily("skynet_ticket_failures", "Failed tickets in recent rollouts",
                                     labels=["env", "group"])
        states = GaugeMetricFamily("skynet_rollouts", "Recent rollouts by state", labels=["env", "group", "state"])
        by_group: dict[str, list[dict[str, Any]]] = {}
        for rollout in rollouts:
            by_group.setdefault(str(rollout["group"]), []).append(rollout)
        for group, items in sorted(by_group.items()):
            finished = [float(r["duration"]) for r in items if r.get("finished_at") and r.get("duration") is not None]
            durations.add_metric([env, group], histogram_buckets(finished, DURATION_BUCKETS), sum(finished))
            latencies = [float(t["handoff"]) for r in items for t in r["tickets"] if t.get("handoff") is not None]
            handoffs.add_metric([env, group], histogram_buckets(latencies, HANDOFF_BUCKETS), sum(latencies))
            failures.add_metric([env, group], float(sum(t.get("state") == "failed"
                                                        for r in items for t in r["tickets"])))
            counts: dict[str, int] = {}
            for r in items:
                counts[str(r.get("state"))] = counts.get(str(r.get("state")), 0) + 1
            for state, count in sorted(counts.items()):
                states.add_metric([env, group, state], float(count))
        yield from (durations, handoffs, failures, states)

        depth = GaugeMetricFamily("skynet_queue_messages", "Messages in a queue, by kind",
                                  labels=["env", "queue", "kind"])
        for queue in self.data.queue_depths():
            depth.add_metric([env, queue.name, "visible"], float(queue.visible))
            depth.add_metric([env, queue.name, "in_flight"], float(queue.in_flight))
            depth.add_metric([env, queue.name, "delayed"], float(queue.delayed))
            if queue.dead_letter is not None:
                depth.add_metric([env, queue.name, "dead_letter"], float(queue.dead_letter))
        yield depth

        # Its own gauge, beside the queue depths: an alert rule needs only ``skynet_dead_letters > 0``.
        dead = GaugeMetricFamily("skynet_dead_letters", "Maintenance events in a group's dead-letter queue",
                                 labels=["env", "group", "queue"])
        for letters in self.data.dead_letters():
            dead.add_metric([env, letters.group, letters.queue], float(letters.messages))
        yield dead

        instances = GaugeMetricFamily("skynet_instances", "Live instances by group, release and health",
                                      labels=["env", "group", "release", "health"])
        heartbeat = GaugeMetricFamily("skynet_instance_heartbeat_age_seconds", "Seconds since an instance's heartbeat",
                                      labels=["env", "instance"])
        counted: dict[tuple[str, str, str], int] = {}
        listed = self.data.instances(now)
        for instance in listed:
            heartbeat.add_metric([env, instance["id"]], float(instance["heartbeat_age"]))
            if instance["stale"]:
                continue
            key = (str(instance["group"]), str(instance["release"] or ""), str(instance["health"]))
            counted[key] = counted.get(key, 0) + 1
        for (group, release, health), count in sorted(counted.items()):
            instances.add_metric([env, group, release, health], float(count))
        yield from (instances, heartbeat, *refusal_metrics(env, listed))


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
