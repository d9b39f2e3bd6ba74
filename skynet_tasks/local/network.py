"""A local VPC: a bridge, and one network namespace per instance at its private address.

Each instance of the stack-built local cluster lives in a namespace of its own, as an EC2
instance lives on its own host: its own loopback, its own ``eth0`` at the private address
moto gave it, a default route to the bridge, and ``169.254.169.254`` on its loopback, where
its instance-metadata stand-in listens. The bridge's address (``.0.1`` of the VPC) is where
moto's server listens for the instances, as a VPC endpoint would. Nothing is forwarded out
of the bridge (IP forwarding is left as it is), so no instance can reach anything but its
peers and the bridge's own address.

Needs root and ``ip`` (iproute2); ``require_namespaces`` says so up front instead of
letting a half-built network fail later.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

IMDS_ADDRESS = "169.254.169.254"


class NetworkError(RuntimeError):
    """The local VPC could not be built (no root, no iproute2, or a name already taken)."""


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["netns", "exec", namespace, "ip"] if namespace else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


def require_namespaces() -> None:
    """Raise NetworkError unless this process can create network namespaces (root and iproute2)."""
    if os.geteuid() != 0:
        raise NetworkError("the stack-built cluster puts each instance in a network namespace: run it as root")
    if shutil.which("ip") is None:
        raise NetworkError("the stack-built cluster needs `ip` (Debian package iproute2)")
    probe = "skynet-probe"
    _ip("netns", "del", probe, check=False)
    result = _ip("netns", "add", probe, check=False)
    _ip("netns", "del", probe, check=False)
    if result.returncode != 0:
        raise NetworkError(f"network namespaces are not available here: {result.stderr.strip()}")


@dataclass(frozen=True)
class Vpc:
    """The bridge that joins a local VPC's instances, named after it (at most 15 characters)."""

    name: str
    cidr: str

    @property
    def bridge(self) -> str:
        """The bridge's interface name (at most 15 characters, as Linux requires)."""
        return f"{self.name}-br"[:15]

    @property
    def gateway(self) -> str:
        """The bridge's address: the first host of the VPC's range."""
        return str(next(ipaddress.ip_network(self.cidr).hosts()))

    def create(self) -> None:
        """Create the bridge with its gateway address (refused if one of that name exists)."""
        if _ip("link", "show", self.bridge, check=False).returncode == 0:
            raise NetworkError(f"a link named {self.bridge} exists already: is another local stack running?")
        prefix = ipaddress.ip_network(self.cidr).prefixlen
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    @classmethod
    def claim(cls, prefix: str = "sky", second_octets: range = range(214, 254)) -> Vpc:
        """Create the first free VPC ``<prefix><n>`` at ``10.<n>.0.0/16``: clusters side by side never share one."""
        for octet in second_octets:
            vpc = cls(f"{prefix}{octet}", f"10.{octet}.0.0/16")
            if _ip("-4", "addr", "show", "to", vpc.cidr, check=False).stdout.strip():
                continue  # the range is in use on this machine
            try:
                vpc.create()
            except NetworkError:
                continue  # taken meanwhile
            return vpc
        raise NetworkError(f"no free address range among 10.{second_octets.start}-{second_octets.stop - 1}.0.0/16")

    def destroy(self) -> None:
        """Delete the bridge, if it exists."""
        _ip("link", "del", self.bridge, check=False)

    def namespace(self, instance_id: str) -> str:
        """The name of ``instance_id``'s network namespace in this VPC."""
        return f"{self.name}-{instance_id}"

    def attach(self, instance_id: str, address: str) -> str:
        """Create the instance's namespace with ``eth0`` at ``address`` on the bridge; return its name."""
        namespace = self.namespace(instance_id)
        host_side = f"v{instance_id[-12:]}"[:15]
        prefix = ipaddress.ip_network(self.cidr).prefixlen
        _ip("netns", "add", namespace)
        _ip("link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("link", "set", host_side, "master", self.bridge, "up")
        _ip("addr", "add", f"{address}/{prefix}", "dev", "eth0", namespace=namespace)
        _ip("link", "set", "eth0", "up", namespace=namespace)
        _ip("link", "set", "lo", "up", namespace=namespace)
        _ip("addr", "add", f"{IMDS_ADDRESS}/32", "dev", "lo", namespace=namespace)
        _ip("route", "add", "default", "via", self.gateway, namespace=namespace)
        log.info("instance %s attached at %s in namespace %s", instance_id, address, namespace)
        return namespace

    def detach(self, instance_id: str) -> None:
        """Delete the instance's namespace (its veth pair goes with it)."""
        _ip("netns", "del", self.namespace(instance_id), check=False)

    def namespaces(self) -> list[str]:
        """The namespaces of this VPC that exist now (to clean up after a crash)."""
        listed = _ip("netns", "list", check=False).stdout.split("\n")
        return [line.split()[0] for line in listed if line.startswith(f"{self.name}-")]
