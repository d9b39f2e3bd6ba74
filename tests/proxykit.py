"""What the proxy tests build registry entries from: one entry of ``local-api``, and the hostile values a
registry entry may carry that must never reach nginx's configuration."""

from __future__ import annotations

import time

from skynet_tasks.registry import Endpoint

HOSTILE = {
    "directive injection": {"address": "1.2.3.4; include /etc/passwd"},
    "brace": {"port": "80}"},
    "newline in the id": {"instance_id": "api-9\nserver 6.6.6.6:80"},
    "hostname": {"address": "evil.example.com"},
    "port out of range": {"port": 70000},
    # Python's ipaddress takes an IPv6 zone of any characters; nginx takes none ("nginx -t" fails)
    "IPv6 zone": {"address": "fe80::1%eth0"},
    "IPv6 zone with syntax": {"address": "fe80::1%eth0;}"},
    "IPv6 zone with a newline": {"address": "fe80::1%x\nserver 6.6.6.6:80"},
}


def endpoint(instance_id: str, port: int, health: str = "healthy", heartbeat: float | None = None,
             address: str = "127.0.0.1") -> Endpoint:
    return Endpoint(instance_id=instance_id, group="local-api", address=address, port=port, release="r1",
                    health=health, heartbeat=time.time() if heartbeat is None else heartbeat)
