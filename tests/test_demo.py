"""``skynet demo --once --json``: the newcomer's story, run exactly as the README tells it.

The demo's cluster is the stack-built one: the template deployed into moto with IAM enforced,
each instance booting from its user data in a namespace of its own, a load-balancer stand-in in
front of the proxy layer. Needs root, as CI has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from clusterkit import assert_one_at_a_time
from stackkit import what_went_wrong

pytestmark = pytest.mark.timeout(420)


def test_the_demo_tells_its_four_steps_and_says_so_in_json(tmp_path):
    namespaces_before = namespaces()
    result = subprocess.run([sys.executable, "-m", "skynet_tasks.cli", "demo", "--dir", str(tmp_path / "demo"),
                             "--once", "--json"], capture_output=True, text=True, timeout=400, check=False,
                            env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYNET_"))})

    assert result.returncode == 0, result.stderr[-3000:] + what_went_wrong(tmp_path / "demo")
    summary = json.loads(result.stdout)
    steps = summary["steps"]
    assert [s["state"] for s in steps] == ["completed", "halted", "completed", "halted"]
    for step in steps:
        assert_one_at_a_time(step["tickets"])
        assert step["requests"]["total"] > 0
    # Through the load balancer and the proxy layer, no request fails: not even while ticket 2 fails.
    assert [s["requests"]["failed"] for s in steps] == [0, 0, 0, 0]
    assert steps[0]["served_release"] == steps[0]["release"]
    assert steps[2]["served_release"] == steps[2]["release"]
    halted = steps[1]["tickets"]
    assert [t["state"] for t in halted] == ["done", "failed", "cancelled"]
    # The fourth fails on ticket 3 with on_failure: revert: its revert takes the second, then the canary, back.
    reverted = steps[3]
    assert [t["state"] for t in reverted["tickets"]] == ["done", "done", "failed"]
    assert reverted["revert"]["state"] == "completed" and reverted["revert"]["release"] == steps[2]["release"]
    assert [t["instance"] for t in reverted["revert"]["tickets"]] == \
        [reverted["tickets"][1]["instance"], reverted["tickets"][0]["instance"]]
    assert_one_at_a_time(reverted["revert"]["tickets"])
    assert reverted["served_release"] == steps[2]["release"]
    assert summary["behaved"] is True
    # Under IAM, moto refused nothing the instances, the receiver or the dashboard asked for.
    moto_log = (tmp_path / "demo" / "logs" / "moto.log").read_text()
    assert not [line for line in moto_log.splitlines() if '" 403 ' in line]
    # Everything it started is gone: no worker, proxy or receiver of this demo is left running.
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == ""
    # No instance namespace is left either (their processes, nginx among them, went with them).
    assert namespaces() <= namespaces_before


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}
