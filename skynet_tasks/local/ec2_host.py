"""One EC2 instance of the stack-built local cluster: its namespaces, its metadata, its first boot.

An instance gets what EC2 gives a host: a network namespace at its private address
(``network.Vpc.attach``), an instance-metadata stand-in in it (``imds``), and a private mount
namespace in which ``/etc``, ``/opt``, ``/srv`` and ``/root`` are overlays whose writes land in the
instance's folder, and ``/opt/skynet`` an overlay of this machine's virtual environment (the
"image", with the agent's runtime baked in, as a baked AMI would have it). ``/tmp`` stays
shared: the sample app's repository may live there. Then its launch template's user data runs,
unchanged: it verifies and installs the agent's wheel, and ``workers.boot`` starts the worker.

The boot environment is what EC2 gives a user-data script plus one variable,
``AWS_ENDPOINT_URL`` (moto's address): no ``SKYNET_*`` variable and no credentials.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from skynet_tasks.local.cluster_info import ClusterError
from skynet_tasks.local.network import IMDS_ADDRESS
from skynet_tasks.local.stack_aws import Ec2Instance
from skynet_tasks.settings import child_environment

BOOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def start_metadata(instance: Ec2Instance, disk: Path, namespace: str, endpoint: str, region: str,
                   service_key: dict[str, str], timeout: float = 30.0, credentials_delay: float = 0.0) -> None:
    """Start the instance's metadata stand-in inside its namespace; return once it answers.

    ``credentials_delay``: a fault mode, the role's credentials answered that many seconds late (``imds``)."""
    config = disk / "imds.json"
    config.write_text(json.dumps({
        "listen": [IMDS_ADDRESS, 80], "instance_id": instance.instance_id, "local_ipv4": instance.address,
        "region": region, "availability_zone": instance.availability_zone, "tags": instance.tags,
        "user_data": instance.user_data, "role_arn": instance.role_arn, "endpoint_url": endpoint,
        "service_key_id": service_key["AWS_ACCESS_KEY_ID"], "service_secret": service_key["AWS_SECRET_ACCESS_KEY"],
        "credentials_delay": credentials_delay}))
    config.chmod(0o600)  # it holds the EC2 service's keys
    with open(disk / "imds.log", "ab") as out:
        process = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-m",
                                    "skynet_tasks.local.imds", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env=child_environment(keep=("PYTHONPATH",), PATH=BOOT_PATH))
    (disk / "imds.pid").write_text(f"{process.pid}\n")  # ip netns exec execs: the same process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(["ip", "netns", "exec", namespace, "bash", "-c", f"exec 3<>/dev/tcp/{IMDS_ADDRESS}/80"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    raise ClusterError(f"the metadata service of {instance.instance_id} did not start; see {disk}/imds.log")


def run_user_data(instance: Ec2Instance, disk: Path, namespace: str, endpoint: str, timeout: float = 180.0) -> None:
    """Run the instance's user data in its namespaces, on its own disk; raise ClusterError if it fails."""
    for part in ("etc", "opt", "venv", "srv", "root"):
        for layer in ("upper", "work"):
            (disk / f"{part}-{layer}").mkdir(parents=True, exist_ok=True)
    (disk / "user-data").write_text(instance.user_data)
    write_name_service(instance, disk / "etc-upper")

    def overlay(lower: str, part: str, target: str) -> str:
        return (f"mount -t overlay overlay -o lowerdir={lower},upperdir={disk}/{part}-upper,"
                f"workdir={disk}/{part}-work {target}")

    # What the instance writes to /etc, /opt and /srv lands in its folder, never on this host.
    # This machine's Python (the image's) may live under /root, which only root may enter: the
    # instance's own /root lets its users reach it, as an AMI's /usr/bin/python3 is reachable.
    mounts = "; ".join([overlay("/etc", "etc", "/etc"), overlay("/opt", "opt", "/opt"), "mkdir -p /opt/skynet",
                        overlay(sys.prefix, "venv", "/opt/skynet"), overlay("/srv", "srv", "/srv"),
                        overlay("/root", "root", "/root"), "chmod 0711 /root"])
    environment = {"PATH": BOOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "AWS_ENDPOINT_URL": endpoint}
    with open(disk / "cloud-init-output.log", "ab") as out:
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, "unshare", "--mount", "--propagation", "private", "bash", "-c",
             f"set -e; {mounts}; exec bash {disk}/user-data"],
            env=environment, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout,
            check=False)
    if result.returncode != 0:
        tail = (disk / "cloud-init-output.log").read_text()[-2000:]
        raise ClusterError(f"instance {instance.instance_id}'s user data failed ({result.returncode}):\n{tail}")


def write_name_service(instance: Ec2Instance, etc: Path) -> None:
    """The instance's own name, as EC2's DHCP options and resolver give it (``ip-10-0-1-4.ec2.internal``).

    The namespace reaches no DNS server, and software asks for its host's name (Python's
    HTTP server looks up the address it binds): its own address is in ``/etc/hosts``, and
    any other lookup fails at once on a resolver that answers nothing, instead of waiting out
    the host's resolver timeouts.
    """
    hostname = "ip-" + instance.address.replace(".", "-")
    hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "127.0.0.1 localhost\n"
    (etc / "hosts").write_text(f"{hosts.rstrip()}\n{instance.address} {hostname}.ec2.internal {hostname}\n")
    (etc / "hostname").write_text(f"{hostname}\n")
    (etc / "resolv.conf").unlink(missing_ok=True)  # a symlink on hosts with a local resolver
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")


def namespace_pids(namespace: str) -> list[int]:
    """The processes running in the network namespace ``namespace``."""
    listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
    return [int(p) for p in listed.stdout.split()]


def stop_namespace(namespace: str, disk: Path, grace: float = 10.0) -> None:
    """Stop an instance as a shutdown would: its processes first (workers leave the registry with
    their role's credentials), its metadata service last; SIGKILL what did not stop."""
    metadata = _read_pid(disk / "imds.pid")
    for last in (False, True):
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            def remaining(last: bool = last) -> list[int]:
                return [pid for pid in namespace_pids(namespace) if last or pid != metadata]

            for pid in remaining():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while remaining() and time.monotonic() < deadline:
                time.sleep(0.1)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
