"""CPU time and start time of an instance's agent, read from the kernel (``/proc/PID/stat``).

The agent is the worker and every process under it but the app (``memory.agent_pids``). A pool
child that stopped (the lazy child stops after a minute idle) is counted too: the worker reaped
it, so the kernel added its CPU time to the worker's "children" times.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.memory import agent_pids

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(worker_pid: int) -> float:
    """CPU seconds (user + system) used so far by the agent's live processes and the children they reaped."""
    total = 0
    for pid in agent_pids(worker_pid):
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue  # it ended meanwhile: its parent's children times hold it from now on
        # Fields 14-17 of stat (utime, stime, cutime, cstime) are 12-15 once the pid and the name are cut.
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / _TICKS


def started_at(pid: int) -> float:
    """When the process started, in seconds since the epoch (``time.time()``'s clock)."""
    # /proc/stat's btime is in whole seconds: the uptime's hundredths place the boot more closely.
    boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    return boot + int(_stat_fields(pid)[19]) / _TICKS  # field 22, starttime, in clock ticks since boot
