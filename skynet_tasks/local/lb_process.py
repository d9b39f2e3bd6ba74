"""The stack-built cluster's load balancer: the stand-in process, fed the RP group's targets.

On AWS the RP auto scaling group registers its instances in the stack's target group, and
the load balancer checks them with the target group's health check. Here the cluster writes
each RP instance it boots into a targets file and the stand-in (``loadbalancer``) reads it,
with the health check moto describes for the stack's target group.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skynet_tasks.local.cluster_info import ClusterError
from skynet_tasks.local.motoserver import free_port
from skynet_tasks.settings import child_environment


@dataclass(frozen=True)
class LocalLoadBalancer:
    """A running load-balancer stand-in: its process, its URL and the file it reads targets from."""

    pid: int
    url: str
    targets_file: Path


def write_targets(path: Path, targets: Iterable[str]) -> None:
    """Replace the targets file atomically: the stand-in never reads half of it."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text("".join(f"{target}\n" for target in targets))
    partial.replace(path)


def start_load_balancer(directory: Path, target_group: dict[str, Any], targets: Iterable[str],
                        timeout: float = 20.0) -> LocalLoadBalancer:
    """Start the stand-in on a loopback port for ``target_group``; return once it listens."""
    targets_file, ready_file = directory / "lb-targets", directory / "lb-ready.json"
    write_targets(targets_file, targets)
    ready_file.unlink(missing_ok=True)
    port = free_port()
    with open(directory / "logs" / "load-balancer.log", "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "skynet_tasks.local.loadbalancer", "--listen", f"127.0.0.1:{port}",
             "--targets-file", str(targets_file), "--target-group-json", json.dumps(target_group, default=str),
             "--ready-file", str(ready_file)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=child_environment())
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise ClusterError(f"the load balancer stand-in did not start; see {directory}/logs/load-balancer.log")
        time.sleep(0.05)
    return LocalLoadBalancer(process.pid, f"http://127.0.0.1:{port}", targets_file)
