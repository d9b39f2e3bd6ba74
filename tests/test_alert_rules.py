"""The shipped Prometheus alert rules: promtool accepts them, and each fires on the series it is about.

``promtool test rules`` evaluates the rules over synthetic series; a rule test is the one way to see
an alert fire without waiting for a real halt. Each alert has a case where it fires and, beside it,
one where it stays quiet, so a rule that always (or never) fires fails here.
"""

from __future__ import annotations

import re
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from metricskit import PROMTOOL

from skynet_tasks.cli import main

pytestmark = pytest.mark.timeout(60)

RULES = Path(str(files("skynet_tasks.monitor").joinpath("alerts.yml")))
AT = {"env": "prod", "group": "prod-api"}


def _labels(**extra: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in {**AT, **extra}.items()) + "}"


def annotations(alert: str, labels: dict[str, str], value: str = "") -> dict[str, str]:
    """The alert's annotations as Prometheus renders them for ``labels`` (``value``: the rendered ``$value``)."""
    rule = next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if r.get("alert") == alert)
    out = {}
    for name, text in rule["annotations"].items():
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        out[name] = re.sub(r"\{\{ \$value[^}]*\}\}", value, text)
    return out


def _case(series: list[tuple[str, str]], at: str, alert: str, fired: list[dict[str, str]], value: str = "") -> dict:
    expected = [{"exp_labels": labels, "exp_annotations": annotations(alert, labels, value)} for labels in fired]
    return {"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}]}


def promtool_test(tmp_path: Path, *cases: dict) -> subprocess.CompletedProcess[str]:
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": list(cases)}))
    return subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, timeout=30)


def test_promtool_checks_the_rules_and_finds_every_promised_alert():
    checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30)

    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert alerts == {"SkynetRolloutHalted", "SkynetDeadLetters", "SkynetHeartbeatStale", "SkynetHandoffSlow",
                      "SkynetCollectorDown"}


def test_a_halted_rollout_fires_rollout_halted_and_a_resumed_one_clears_it(tmp_path):
    halted = [(f"skynet_rollouts_in_line{_labels(state='halted')}", "0 0 1 1 0 0")]

    result = promtool_test(
        tmp_path,
        _case(halted, "3m", "SkynetRolloutHalted", [{**AT, "state": "halted", "severity": "critical"}]),
        _case(halted, "1m", "SkynetRolloutHalted", []),
        _case(halted, "5m", "SkynetRolloutHalted", []))

    assert result.returncode == 0, result.stdout + result.stderr


def test_dead_letters_stale_heartbeats_and_a_failing_collector_fire_after_their_grace(tmp_path):
    dead = [(f"skynet_dead_letters{_labels(queue='skynet-prod-prod-api-maint-dlq.fifo')}", "0 2 2 2")]
    # Heartbeats every minute until minute 3 (timestamps in seconds since the series' start), then none.
    beats = [(f"skynet_instance_heartbeat_timestamp_seconds{_labels(instance='api-1')}", "0 60 120 180x8")]
    down = [('skynet_collector_up{env="prod"}', "1 0 0 0 0")]
    dlq_labels = {**AT, "queue": "skynet-prod-prod-api-maint-dlq.fifo", "severity": "warning"}

    result = promtool_test(
        tmp_path,
        _case(dead, "3m", "SkynetDeadLetters", [dlq_labels], value="2"),
        _case(dead, "1m", "SkynetDeadLetters", []),
        _case(beats, "9m", "SkynetHeartbeatStale", [{**AT, "instance": "api-1", "severity": "warning"}]),
        _case(beats, "4m", "SkynetHeartbeatStale", []),
        _case(down, "4m", "SkynetCollectorDown", [{"env": "prod", "severity": "critical"}]),
        _case(down, "2m", "SkynetCollectorDown", []))

    assert result.returncode == 0, result.stdout + result.stderr


def test_slow_handoffs_fire_handoff_slow_and_fast_ones_do_not(tmp_path):
    def handoffs(group: str, slow: bool) -> list[tuple[str, str]]:
        # 60 hand-offs a minute: the fast group's all under 0.1 s, the slow group's between 5 and 10 s.
        at = f'env="prod",group="{group}"'
        fast = "0x60" if slow else "0+60x60"
        return [(f'skynet_ticket_handoff_latency_seconds_bucket{{{at},le="{le}"}}', values)
                for le, values in (("0.1", fast), ("5.0", fast), ("10.0", "0+60x60"), ("+Inf", "0+60x60"))]

    result = promtool_test(
        tmp_path,
        _case(handoffs("prod-api", slow=True) + handoffs("prod-rp", slow=False), "45m", "SkynetHandoffSlow",
              [{"env": "prod", "group": "prod-api", "severity": "warning"}], value="9.75s"))

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_rule_test_that_expects_the_wrong_alert_fails(tmp_path):
    quiet = [(f"skynet_rollouts_in_line{_labels(state='halted')}", "0 0 0 0")]

    result = promtool_test(tmp_path, _case(quiet, "3m", "SkynetRolloutHalted", [{**AT, "state": "halted",
                                                                                 "severity": "critical"}]))

    assert result.returncode != 0


def test_the_cli_prints_the_shipped_rules():
    printed = CliRunner().invoke(main, ["metrics", "alerts"], env={"SKYNET_ENV": "prod"})

    assert printed.exit_code == 0, printed.output
    assert printed.output == RULES.read_text()
