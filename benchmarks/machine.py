"""How busy the machine was while a benchmark ran: load average, CPU busy share, and who used it.

The rollout benchmark runs every instance, the moto server and the benchmark itself on one
machine. These figures say when that machine, not the design, sets the pace: a load average
above the core count, or moto (which serves every AWS call of every instance) using most of a core.
The benchmark's own process counts AWS requests (``countingproxy``, in front of every call) and samples
memory: what it uses is the measurement's, not the design's; the rest is the instances' (and the OS's).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of proc(5))


def machine_busy() -> tuple[float, float]:
    """The machine's (busy, total) CPU seconds since boot, over every core (/proc/stat's first line)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


class MachineLoad:
    """Samples the 1-minute load average each second while in use; ``summary`` after."""

    def __init__(self, moto_pid: int) -> None:
        self.moto_pid = moto_pid
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="machine-load", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.loads.append(os.getloadavg()[0])

    def __enter__(self) -> MachineLoad:
        self.started = time.monotonic()
        self.moto_before = cpu_seconds(self.moto_pid)
        self.own_before = time.process_time()  # every thread of this process: the counting proxy, the samplers
        self.busy_before = machine_busy()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.wall = time.monotonic() - self.started
        self.moto = cpu_seconds(self.moto_pid) - self.moto_before
        self.own = time.process_time() - self.own_before
        busy, total = machine_busy()
        self.busy = busy - self.busy_before[0]
        self.total = total - self.busy_before[1]

    def _cores(self, seconds: float) -> float | None:
        return round(seconds / self.wall, 2) if self.wall else None

    def summary(self) -> dict[str, Any]:
        """Cores, load average (mean and max of 1-minute samples), CPU busy share; the cores moto, the benchmark's
        own process and the rest (the instances) used, and moto's share of the busy CPU."""
        return {
            "cores": os.cpu_count(),
            "load_1m_mean": round(sum(self.loads) / len(self.loads), 2) if self.loads else None,
            "load_1m_max": round(max(self.loads), 2) if self.loads else None,
            "cpu_busy_share": round(self.busy / self.total, 3) if self.total else None,
            "moto_cores_used": self._cores(self.moto),
            "benchmark_cores_used": self._cores(self.own),
            "instances_cores_used": self._cores(max(self.busy - self.moto - self.own, 0.0)),
            "moto_share_of_busy": round(self.moto / self.busy, 3) if self.busy else None,
        }
