"""``skynet metrics``: what a Prometheus and Grafana setup needs from Skynet (alert rules, a dashboard)."""

from __future__ import annotations

from importlib.resources import files
from importlib.util import find_spec

import click


@click.group()
def metrics() -> None:
    """Prometheus alert rules and a Grafana dashboard for the dashboard's /metrics."""


@metrics.command("alerts")
def alerts() -> None:
    """Print Skynet's Prometheus alert rules (a rule file: rollout halted, dead letters, stale heartbeats...)."""
    click.echo(files("skynet_tasks.monitor").joinpath("alerts.yml").read_text(), nl=False)


@metrics.command("grafana")
def grafana() -> None:
    """Print a Grafana dashboard (import JSON) of the rollouts and the fleet; needs the grafana extra."""
    if find_spec("grafanalib") is None:
        raise click.ClickException("skynet metrics grafana needs the grafana extra: pip install 'skynet[grafana]'")
    from skynet_tasks.monitor.grafana import dashboard_json  # the extra's import, only once it is known to be there

    click.echo(dashboard_json())
