"""The dashboard's charts: what the pages draw them from, and each chart as an SVG document of its own.

The charts themselves are pure (``chart_timeline``, ``chart_history``, ``chart_fleet``); their
templates are under ``templates/charts/``. Pages draw them inline, so they refresh with the page's
main part; ``/charts/...svg`` serves the same drawing alone, behind the same read guard as every
page, for a link or an image elsewhere.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, render_template

from skynet_tasks.monitor.chart_fleet import Fleet, fleet_releases
from skynet_tasks.monitor.chart_history import group_history
from skynet_tasks.monitor.chart_timeline import rollout_timeline
from skynet_tasks.monitor.data import MonitorData, NotFound, check_part, check_rollout_id, summarize

# Rollouts per group the groups page reads for its history chart (and for its "latest rollout").
HISTORY_ROLLOUTS = 10
SVG = "image/svg+xml"


def fleet_of(data: MonitorData) -> Fleet:
    """The env's fleet chart, read fresh: groups and desired releases from the ledger, instances from the registry."""
    groups = data.ledger.list_groups()
    desired = {name: data.ledger.group_info(name).get("desired_release") for name in groups}
    return fleet_releases(groups, desired, data.instances())


def _svg(template: str, **context: Any) -> Response:
    return Response(render_template(template, **context), mimetype=SVG)


def add_chart_routes(app: Flask, data: MonitorData) -> None:
    """Give ``app``'s templates the chart builders, and serve each chart alone under ``/charts/``."""
    app.jinja_env.globals.update(rollout_timeline=lambda rollout: rollout_timeline(rollout, time.time()),
                                 group_history=group_history)

    @app.get("/charts/rollouts/<rollout_id>.svg")
    def rollout_chart(rollout_id: str) -> Response:
        now = time.time()
        view = data.ledger.rollout_view(check_rollout_id(rollout_id))
        if view is None:
            raise NotFound(f"no rollout {rollout_id}")
        return _svg("charts/timeline.svg", chart=rollout_timeline(summarize(view, now), now))

    @app.get("/charts/groups/<group>/history.svg")
    def history_chart(group: str) -> Response:
        if not data.ledger.group_info(check_part("group", group)):
            raise NotFound(f"no group {group}")
        return _svg("charts/history.svg", chart=group_history(group, data.rollouts(group, HISTORY_ROLLOUTS)))

    @app.get("/charts/fleet.svg")
    def fleet_chart() -> Response:
        return _svg("charts/fleet.svg", chart=fleet_of(data))
