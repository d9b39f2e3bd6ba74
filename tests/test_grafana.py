"""The Grafana dashboard ``skynet metrics grafana`` prints (made with grafanalib).

That its panels query series the dashboard really exports is checked against a real Prometheus
in tests/test_metrics.py; here, its shape and the command.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
from click.testing import CliRunner

from skynet_tasks.cli import main
from skynet_tasks.monitor.grafana import dashboard_json

pytestmark = pytest.mark.timeout(30)


def test_the_dashboard_has_a_rollouts_row_and_a_fleet_row_of_prometheus_panels():
    board = json.loads(dashboard_json())

    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    titles = {p["title"] for p in board["panels"]}
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert rows == ["Rollouts", "Fleet"]
    assert {"Halted rollouts", "Ticket hand-off latency", "Update duration", "Instances by release",
            "Heartbeat age", "Dead letters", "Collector up"} <= titles
    assert all(p["datasource"] == "${DS_PROMETHEUS}" and p["targets"] for p in panels)
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert [v["name"] for v in board["templating"]["list"]] == ["env", "group"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_every_query_is_narrowed_to_the_chosen_env_and_histograms_are_read_as_quantiles():
    targets = [t for p in json.loads(dashboard_json())["panels"] for t in p.get("targets", [])]

    assert all('env=~"$env"' in t["expr"] for t in targets)
    for target in targets:
        for histogram in re.findall(r"\b(skynet_[a-z_]+_seconds)_bucket", target["expr"]):
            assert target["expr"].startswith("histogram_quantile("), histogram


def test_the_cli_prints_the_dashboard_as_import_json():
    printed = CliRunner().invoke(main, ["metrics", "grafana"], env={"SKYNET_ENV": "prod"})

    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["uid"] == "skynet-rollouts"


def test_without_grafanalib_the_cli_names_the_extra(monkeypatch):
    # The package's ``metrics`` attribute is the click group; the module is in sys.modules.
    monkeypatch.setattr(sys.modules["skynet_tasks.cli.metrics"], "find_spec", lambda name: None)

    printed = CliRunner().invoke(main, ["metrics", "grafana"], env={"SKYNET_ENV": "prod"})

    assert printed.exit_code != 0 and "pip install 'skynet[grafana]'" in printed.output
