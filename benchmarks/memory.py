"""What the agent costs in memory and processes per instance, read from the kernel (``/proc/PID/smaps_rollup``).

PSS (proportional set size) shares a page between the processes that map it, so the PSS of an
instance's processes adds up to what the instance really costs, unlike RSS. The agent is the
instance's worker process and every process it started, except the app and its supervisor
(the app is what the instance serves, not what the agent costs).

    .venv/bin/python -m benchmarks.memory [DIR]   # a running `skynet local up` cluster (.local-cluster)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
from pathlib import Path
from typing import Any

from skynet_tasks.local.cluster_info import ClusterInfo
from skynet_tasks.proctable import child_pids

APP_MARKERS = ("skynet_tasks.supervisor", "skynet_tasks.appspec")


def pss_mb(pid: int) -> float:
    """The process's PSS in MB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def agent_pids(worker_pid: int) -> list[int]:
    """The worker and every process under it that is not the app (or its supervisor)."""
    found, todo = [], [worker_pid]
    while todo:
        pid = todo.pop()
        if any(marker in _command(pid) for marker in APP_MARKERS):
            continue
        found.append(pid)
        todo.extend(child_pids(pid))
    return found


def instance_memory(worker_pid: int) -> dict[str, Any]:
    """The agent's processes of one instance: how many, the PSS of each and their sum."""
    processes = {pid: round(pss_mb(pid), 1) for pid in agent_pids(worker_pid) if os.path.exists(f"/proc/{pid}")}
    return {"processes": len(processes), "pss_mb": round(sum(processes.values()), 1),
            "pss_mb_per_process": sorted(processes.values(), reverse=True)}


def agent_memory(info: ClusterInfo) -> dict[str, Any]:
    """Per instance of the cluster: process count and PSS; and their mean and maximum."""
    per_instance = {instance.id: instance_memory(instance.pid) for instance in info.instances}
    totals = [figures["pss_mb"] for figures in per_instance.values()]
    counts = [figures["processes"] for figures in per_instance.values()]
    return {"pss_mb_per_instance_mean": round(statistics.mean(totals), 1) if totals else 0.0,
            "pss_mb_per_instance_max": max(totals, default=0.0),
            "processes_per_instance_max": max(counts, default=0),
            "example": next(iter(per_instance.values()), {})}


class PeakMemory:
    """Samples every instance's agent PSS once a second in a thread, keeping each instance's highest."""

    def __init__(self, info: ClusterInfo, every: float = 1.0) -> None:
        self.info, self.every = info, every
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for instance in self.info.instances:
                pss = instance_memory(instance.pid)["pss_mb"]
                self.peaks[instance.id] = max(pss, self.peaks.get(instance.id, 0.0))

    def summary(self) -> dict[str, float]:
        """The highest agent PSS any instance reached, and the mean of the instances' highest."""
        peaks = list(self.peaks.values())
        return {"pss_mb_per_instance_peak_max": round(max(peaks, default=0.0), 1),
                "pss_mb_per_instance_peak_mean": round(statistics.mean(peaks), 1) if peaks else 0.0}


def main() -> None:
    from skynet_tasks.local.cluster import LocalCluster

    cluster = LocalCluster(Path(sys.argv[1] if len(sys.argv) > 1 else ".local-cluster"))
    print(json.dumps(agent_memory(cluster.require_info()), indent=2))


if __name__ == "__main__":
    main()
