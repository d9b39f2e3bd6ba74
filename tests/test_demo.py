"""``skynet demo --once --json``: the newcomer's story, run exactly as the README tells it.

The demo's cluster is the stack-built one: the template deployed into moto with IAM enforced,
each instance booting from its user data in a namespace of its own, a load-balancer stand-in in
front of the proxy layer. Needs root, as CI has.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clusterkit import assert_one_at_a_time

from skynet_tasks.local.stack_cluster import StackCluster

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


def what_went_wrong(demo: Path) -> str:
    """For a failed demo: the requests moto refused or failed, and each instance's last warnings and errors
    (CI keeps only this output; the demo's folder goes with the machine)."""
    moto_log = demo / "logs" / "moto.log"
    refused = [line for line in moto_log.read_text(errors="replace").splitlines()  # a 400 is a lost condition: usual
               if re.search(r'" (403|5\d\d) ', line)] if moto_log.exists() else []
    lines = ["", f"moto refused or failed {len(refused)} requests (403 or 5xx), the last:", *refused[-5:]]
    for log in sorted(demo.glob(StackCluster.WORKER_LOGS)):
        worrying = [line[:240] for line in log.read_text(errors="replace").splitlines()
                    if " WARNING " in line or " ERROR " in line or "Traceback" in line]
        building = [line[:240] for line in log.read_text(errors="replace").splitlines() if "build" in line]
        lines += [f"{log.parts[-5]}: {len(worrying)} warnings and errors, the last:", *worrying[-6:],
                  "  and its last lines about builds:", *building[-3:]]
    return "\n".join(lines)
