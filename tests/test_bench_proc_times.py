"""The idle-cost benchmark's process figures: CPU seconds and start times read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.proc_times import cpu_seconds, started_at

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"


def test_a_process_start_time_is_when_it_was_spawned():
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert before - 0.5 <= started_at(child.pid) <= time.time() + 0.5
    finally:
        child.kill()
        child.wait()


def test_cpu_seconds_count_a_child_that_burned_cpu_and_one_already_reaped():
    # The parent burns nothing itself; its first child burns 0.5 s and is reaped, its second burns 0.5 s and lives.
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time\n"
                               f"subprocess.run([sys.executable, '-c', {BURN.replace('time.sleep(30)', '')!r}])\n"
                               f"subprocess.Popen([sys.executable, '-c', {BURN!r}])\n"
                               "time.sleep(30)\n"])
    try:
        deadline = time.monotonic() + 20
        used = 0.0
        while time.monotonic() < deadline and used < 0.95:
            used = cpu_seconds(parent.pid)
            time.sleep(0.1)
        assert 0.95 <= used < 5
    finally:
        parent.kill()
        parent.wait()


def test_the_agents_processes_are_found_from_one_reading_of_the_process_table():
    from benchmarks.memory import agent_pids, children_by_parent

    # A worker stand-in with a child of its own and an app under a supervisor (left out: the app is not the agent)
    worker = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time\n"
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)',"
                               " 'skynet_tasks.' + 'supervisor'])\n"  # (the marker in its child's command only)
                               "time.sleep(30)\n"])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(children_by_parent().get(worker.pid, [])) < 2:
            time.sleep(0.1)
        tree = children_by_parent()

        found = agent_pids(worker.pid, tree)

        assert len(tree[worker.pid]) == 2
        assert found[0] == worker.pid and len(found) == 2  # the worker and its own child, not the supervisor
    finally:
        subprocess.run(["pkill", "-P", str(worker.pid)], check=False)
        worker.kill()
        worker.wait()
