"""The record of a running local cluster (``DIR/cluster.json``), and what both kinds of local cluster do with it.

Everything a local cluster starts is recorded here with its process id, so ``skynet local down``
stops exactly that, and ``skynet status``, the demo and the tests find the cluster again. The
record is written by this machine's own cluster code: it is trusted.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.processes import stop_process_group


class ClusterError(Exception):
    """The local cluster could not be started or found."""


@dataclass
class InstanceInfo:
    """One instance of a local cluster: where its files are, its worker's process id, its app's port."""

    id: str
    layer: str
    group: str
    root: str
    pid: int
    app_port: int


@dataclass
class ClusterInfo:
    """What a local cluster is made of: its moto server, sample repository, instances and services."""

    dir: str
    env: str
    aws_endpoint: str
    moto_pid: int
    app_repo: str
    groups: list[str]
    instances: list[InstanceInfo] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    webhook_url: str | None = None
    rp_url: str | None = None
    dashboard_url: str | None = None
    dashboard_token_file: str | None = None
    webhook_secret_file: str | None = None
    # Processes beside the instances (webhook receiver, dashboard), by name, so `down` stops them too.
    services: dict[str, int] = field(default_factory=dict)
    # The branch of the sample app each extra application layer tracks (``api`` tracks ``main``).
    branches: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON data."""
        return asdict(self)

    @classmethod
    def load(cls, directory: Path) -> ClusterInfo:
        """The record of the cluster in ``directory``; ClusterError if there is none."""
        path = directory / "cluster.json"
        if not path.exists():
            raise ClusterError(f"no local cluster in {directory} (no cluster.json)")
        data = json.loads(path.read_text())
        data["instances"] = [InstanceInfo(**i) for i in data.get("instances", [])]
        return cls(**data)

    def save(self) -> None:
        """Write the record to ``cluster.json`` in the cluster's folder, replacing the old one whole."""
        path = Path(self.dir) / "cluster.json"
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(temp, path)

    def write_env_file(self) -> Path:
        """Write ``env.sh``, which points a shell at the cluster when sourced; return its path."""
        lines = ["# Point a shell at the local Skynet cluster: source this file."]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(self.environment.items())]
        path = Path(self.dir) / "env.sh"
        path.write_text("\n".join(lines) + "\n")
        return path


class RecordedCluster:
    """A local cluster of either kind: a folder holding its record, and the moto server it started."""

    # Where each instance's worker log is, under the cluster's folder (a glob pattern).
    WORKER_LOGS = "instances/*/logs/worker.log"

    def __init__(self, directory: Path) -> None:
        self.dir = directory.resolve()
        self.info: ClusterInfo | None = None
        self.moto: MotoServer | None = None

    def worker_logs(self) -> str:
        """The instances' worker logs, as a glob pattern."""
        return f"{self.dir}/{self.WORKER_LOGS}"

    def require_info(self) -> ClusterInfo:
        """The cluster's record: the one this object made, else the one in its folder (ClusterError if none)."""
        if self.info is None:
            self.info = ClusterInfo.load(self.dir)
        return self.info

    def recorded_info(self) -> ClusterInfo | None:
        """The cluster's record, or None where there is none."""
        try:
            return self.require_info()
        except ClusterError:
            return None

    def stop_recorded(self, alongside: Iterable[Callable[[], object]] = ()) -> None:
        """Stop the recorded services with ``alongside`` at the same time, then moto's server; delete the record."""
        info = self.recorded_info()
        stops: list[Callable[[], object]] = [partial(stop_process_group, pid, 5)
                                             for pid in (info.services.values() if info else [])]
        stops += alongside
        # All at once: each worker's warm shutdown waits out its long poll, and those waits overlap.
        with ThreadPoolExecutor(max_workers=max(len(stops), 1)) as pool:
            for stopping in [pool.submit(stop) for stop in stops]:
                stopping.result()
        if info is not None:
            stop_process_group(info.moto_pid, grace=5)
        if self.moto is not None:
            self.moto.stop()
        (self.dir / "cluster.json").unlink(missing_ok=True)
