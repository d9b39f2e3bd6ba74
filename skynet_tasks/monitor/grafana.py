"""A Grafana dashboard of Skynet's metrics, built with grafanalib: rollouts and the fleet, per env and group.

``skynet metrics grafana > skynet.json`` writes it; import it in Grafana and pick the Prometheus
data source that scrapes the dashboard's ``/metrics``. grafanalib comes with the ``grafana`` extra:
import this module only from the command that needs it.
"""

from __future__ import annotations

import json
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    Dashboard,
    DataSourceInput,
    GridPos,
    RowPanel,
    Stat,
    Target,
    Template,
    Templating,
    TimeSeries,
)

DATASOURCE = "${DS_PROMETHEUS}"
# Every query is narrowed to the env and group chosen at the top of the dashboard.
AT = 'env=~"$env",group=~"$group"'
WIDTH = 8
HEIGHT = 8


def _series(title: str, unit: str, *targets: tuple[str, str], stacked: bool = False,
             description: str = "") -> TimeSeries:
    return TimeSeries(
        title=title, description=description, dataSource=DATASOURCE, unit=unit,
        targets=[Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + i))
                 for i, (expr, legend) in enumerate(targets)],
        stacking={"mode": "normal", "group": "A"} if stacked else {}, fillOpacity=30 if stacked else 0)


def _quantile(q: float, histogram: str, window: str = "$__rate_interval") -> str:
    return f"histogram_quantile({q}, sum by (group, le) (rate({histogram}_bucket{{{AT}}}[{window}])))"


def rollout_panels() -> list[Any]:
    """The panels of the rollouts row: what happened to rollouts and how fast their tickets moved."""
    return [
        Stat(title="Halted rollouts", dataSource=DATASOURCE, colorMode="background", graphMode="none",
             reduceCalc="lastNotNull",
             targets=[Target(expr=f'sum(skynet_rollouts_in_line{{{AT},state="halted"}}) or vector(0)', refId="A")],
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]),
        _series("Rollouts by outcome", "short",
                (f"sum by (state) (increase(skynet_rollouts_total{{{AT}}}[$__range]))", "{{state}}"),
                description="Times a rollout entered each state over the time range (running: joined or resumed)."),
        _series("Rollouts in the line", "short",
                (f"sum by (group, state) (skynet_rollouts_in_line{{{AT}}})", "{{group}} {{state}}"), stacked=True),
        _series("Ticket hand-off latency", "s",
                (_quantile(0.5, "skynet_ticket_handoff_latency_seconds"), "p50 {{group}}"),
                (_quantile(0.95, "skynet_ticket_handoff_latency_seconds"), "p95 {{group}}"),
                description="From the conductor deciding a ticket's turn to its instance acknowledging it."),
        _series("Update duration", "s",
                (_quantile(0.5, "skynet_update_duration_seconds"), "p50 {{group}}"),
                (_quantile(0.95, "skynet_update_duration_seconds"), "p95 {{group}}")),
        _series("Rollout duration and failed tickets", "short",
                (_quantile(0.5, "skynet_rollout_duration_seconds", "1h"), "rollout p50 (s) {{group}}"),
                (f"sum by (group) (increase(skynet_ticket_failures_total{{{AT}}}[1h]))", "failed tickets/h {{group}}")),
    ]


def fleet_panels() -> list[Any]:
    """The panels of the fleet row: releases, health, heartbeats, queues and the collector itself."""
    return [
        _series("Instances by release", "short",
                (f"sum by (release) (skynet_instances{{{AT}}})", "{{release}}"), stacked=True),
        _series("Instances by health", "short",
                (f"sum by (health) (skynet_instances{{{AT}}})", "{{health}}"), stacked=True),
        _series("Heartbeat age", "s",
                (f"time() - skynet_instance_heartbeat_timestamp_seconds{{{AT}}}", "{{instance}}")),
        _series("Queue messages", "short",
                ('sum by (queue, kind) (skynet_queue_messages{env=~"$env"})', "{{queue}} {{kind}}")),
        _series("Dead letters", "short", (f"skynet_dead_letters{{{AT}}}", "{{queue}}")),
        Stat(title="Collector up", dataSource=DATASOURCE, graphMode="none", colorMode="background",
             reduceCalc="lastNotNull",
             targets=[Target(expr='min(skynet_collector_up{env=~"$env"})', refId="A")],
             thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}]),
    ]


def _laid_out(top: int, title: str, panels: list[Any]) -> tuple[list[Any], int]:
    out: list[Any] = [RowPanel(title=title, gridPos=GridPos(h=1, w=24, x=0, y=top))]
    for i, panel in enumerate(panels):
        panel.gridPos = GridPos(h=HEIGHT, w=WIDTH, x=(i % 3) * WIDTH, y=top + 1 + (i // 3) * HEIGHT)
        out.append(panel)
    return out, top + 1 + -(-len(panels) // 3) * HEIGHT


def dashboard() -> Dashboard:
    """The dashboard: env and group variables, a rollouts row and a fleet row."""
    rollouts, below = _laid_out(0, "Rollouts", rollout_panels())
    fleet, _ = _laid_out(below, "Fleet", fleet_panels())
    variables = [
        Template(name="env", label="env", dataSource=DATASOURCE, query="label_values(skynet_collector_up, env)",
                 includeAll=True, multi=True, default="$__all", allValue=".*"),
        Template(name="group", label="group", dataSource=DATASOURCE,
                 query='label_values(skynet_rollouts_total{env=~"$env"}, group)', includeAll=True, multi=True,
                 default="$__all", allValue=".*"),
    ]
    return Dashboard(
        title="Skynet", uid="skynet-rollouts", tags=["skynet"], timezone="browser", refresh="30s",
        inputs=[DataSourceInput(name="DS_PROMETHEUS", label="Prometheus", pluginId="prometheus",
                                pluginName="Prometheus")],
        templating=Templating(list=variables), panels=[*rollouts, *fleet]).auto_panel_ids()


def dashboard_json() -> str:
    """The dashboard as Grafana's import JSON."""
    return json.dumps(dashboard().to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2)
