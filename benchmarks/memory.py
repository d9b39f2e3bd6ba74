"""What the agent costs in memory and processes per instance, read from the kernel (``/proc/PID/smaps_rollup``).

PSS (proportional set size) shares a page between the processes that map it, so the PSS of an
instance's processes adds up to what the instance really costs, unlike RSS. The agent is the
instance's worker process and every process it started, except the app and its supervisor
(the app is what the instance serves, not what the agent costs).

    .venv/bin/python -m benchmarks.memory [DIR]   # a running `skynet local up` cluster (.local-cluster)
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import threading
from pathlib import Path
from typing import Any

from skynet_tasks.local.cluster_info import ClusterInfo

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


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from one reading of /proc.

    Read once per sample and walked for every instance: looking up each process's children in /proc on
    its own read the whole process table per process, about 50,000 files a second for 40 instances, and
    the benchmark's own process then used more of the two cores than moto.
    """
    tree: dict[int, list[int]] = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after the command: state, then ppid
        except (OSError, IndexError, ValueError):
            continue  # it exited while we looked
        tree[parent].append(int(stat.parent.name))
    return tree


def agent_pids(worker_pid: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    """The worker and every process under it that is not the app (or its supervisor); ``tree``: the
    process table's ``children_by_parent`` (read now if not given)."""
    children = children_by_parent() if tree is None else tree
    found, todo = [], [worker_pid]
    while todo:
        pid = todo.pop()
        if any(marker in _command(pid) for marker in APP_MARKERS):
            continue
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def instance_memory(worker_pid: int, tree: dict[int, list[int]] | None = None) -> dict[str, Any]:
    """The agent's processes of one instance: how many, the PSS of each and their sum."""
    processes = {pid: round(pss_mb(pid), 1) for pid in agent_pids(worker_pid, tree) if os.path.exists(f"/proc/{pid}")}
    return {"processes": len(processes), "pss_mb": round(sum(processes.values()), 1),
            "pss_mb_per_process": sorted(processes.values(), reverse=True)}


def agent_memory(info: ClusterInfo) -> dict[str, Any]:
    """Per instance of the cluster: process count and PSS; and their mean and maximum."""
    tree = children_by_parent()
    per_instance = {instance.id: instance_memory(instance.pid, tree) for instance in info.instances}
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
            tree = children_by_parent()
            for instance in self.info.instances:
                pss = instance_memory(instance.pid, tree)["pss_mb"]
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
