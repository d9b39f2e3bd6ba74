"""Helpers of the tests that run on the stack-built cluster (``StackCluster``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skynet_tasks.aws import INSTANCE_METADATA_WAIT
from skynet_tasks.local.stack_cluster import StackCluster, StackInstance

ENV = "local"
# A request moto refused under IAM, in its access log: '... "POST / HTTP/1.1" 403 -'.
DENIED = re.compile(r'" 403 ')


@contextmanager
def stack_up(directory: Path, api: int, rp: int, wheel: Path | None = None,
             metadata_delay: float = 0.0) -> Iterator[StackCluster]:
    """A stack-built cluster of env ``ENV`` with ``api`` and ``rp`` instances booting ``wheel`` (None:
    built from this checkout), up while the block runs; ``metadata_delay``: its instances' metadata answers
    their credentials that many seconds late (a fault mode, ``StackCluster``)."""
    cluster = StackCluster(directory, env=ENV, wheel=wheel, metadata_delay=metadata_delay)
    cluster.up(api=api, rp=rp)
    try:
        yield cluster
    finally:
        cluster.down()


def operator_env(cluster: StackCluster) -> dict[str, str]:
    """This shell's environment with the operator's keys, and no SKYNET_* variable but the env."""
    own = {k: v for k, v in os.environ.items() if not k.startswith("SKYNET_")}
    return {**own, **cluster.require_state().operator, "SKYNET_ENV": ENV}


def skynet(cluster: StackCluster, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the CLI as the operator would."""
    return subprocess.run([sys.executable, "-m", "skynet_tasks.cli", *args], env=operator_env(cluster),
                          capture_output=True, text=True, timeout=timeout, check=False)


def denied_requests(cluster: StackCluster) -> list[str]:
    """The requests moto refused under IAM so far, from its log."""
    moto_log = (Path(cluster.dir) / "logs" / "moto.log").read_text()
    return [line for line in moto_log.splitlines() if DENIED.search(line)]


def instances_of(cluster: StackCluster, layer: str) -> list[StackInstance]:
    return [i for i in cluster.require_state().instances if i.layer == layer]


def in_namespace(cluster: StackCluster, instance: StackInstance, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python inside an instance's network namespace, as a process on that instance would (no keys given;
    the metadata service's wait the user data sets)."""
    environment = {"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": cluster.require_info().aws_endpoint,
                   "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                   **INSTANCE_METADATA_WAIT}
    return subprocess.run(["ip", "netns", "exec", instance.namespace, sys.executable, "-c", code], env=environment,
                          capture_output=True, text=True, timeout=60, check=False)


def instance_users(instance: StackInstance) -> dict[int, str]:
    """The instance's users by uid, as its own /etc/passwd (an overlay of this host's) names them."""
    own = Path(instance.disk) / "etc-upper" / "passwd"
    text = (own if own.exists() else Path("/etc/passwd")).read_text()
    return {int(fields[2]): fields[0] for fields in (line.split(":") for line in text.splitlines()) if len(fields) > 2}


def instance_processes(instance: StackInstance) -> dict[int, tuple[int, str, list[str]]]:
    """What ``ps`` shows on the instance, by pid: parent pid, user (real, effective, saved and file
    uid all that user, else ``mixed:<uids>``) and command line. The metadata stand-in, EC2's and not
    the instance's, is left out."""
    users = instance_users(instance)
    metadata = (Path(instance.disk) / "imds.pid").read_text().strip()
    listed = subprocess.run(["ip", "netns", "pids", instance.namespace], capture_output=True, text=True, check=True)
    found = {}
    for pid in listed.stdout.split():
        if pid == metadata:
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        except OSError:
            continue  # it exited while we looked
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uids = {int(u) for u in fields["Uid"].split()}
        user = users.get(next(iter(uids)), "?") if len(uids) == 1 else f"mixed:{sorted(uids)}"
        found[int(pid)] = (int(fields["PPid"]), user, argv)
    return found


def what_went_wrong(demo: Path, last: int = 0) -> str:
    """For a failed test on a stack-built cluster (``demo``: its folder): the requests moto refused or failed,
    and each instance's last warnings and errors, and its ``last`` lines (CI keeps only this output; the
    folder goes with the machine)."""
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
        if last:
            lines += [f"  and its last {last} lines:", *(line[:240] for line in
                                                        log.read_text(errors="replace").splitlines()[-last:])]
    return "\n".join(lines)
