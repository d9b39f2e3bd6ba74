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
