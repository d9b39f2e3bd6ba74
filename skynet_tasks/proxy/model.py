"""What the proxy routes to, checked: registry entries become upstreams only if every value is safe.

Untrusted input: registry entries are written by instances (and by anyone who can
write the table), so every value that reaches the nginx template is checked here
first. An entry with a hostile value is refused and logged, and only that entry:
the rest of the configuration still renders.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from skynet_tasks import names
from skynet_tasks.addresses import ip_address
from skynet_tasks.registry import Endpoint
from skynet_tasks.states import Health

log = logging.getLogger(__name__)


class UnsafeEntry(ValueError):
    """A registry value that must not reach the nginx configuration."""


@dataclass(frozen=True)
class Server:
    """One checked upstream server: the instance, its IP literal and its port."""

    instance_id: str
    address: str  # an IP literal, bracketed when IPv6
    port: int


@dataclass(frozen=True)
class Upstream:
    """The healthy servers of one layer of an env (possibly none)."""

    env: str
    layer: str
    servers: tuple[Server, ...]

    @property
    def name(self) -> str:
        """The nginx upstream's name, ``<env>__<layer>``."""
        return f"{self.env}__{self.layer}"


@dataclass(frozen=True)
class ProxyView:
    """What a proxy routes to: the upstreams, the webhook receiver it fronts, the entries refused."""

    upstreams: tuple[Upstream, ...]
    webhook: str | None = None  # host:port of the webhook receiver, if this proxy fronts it
    refused: tuple[str, ...] = field(default=())


def check_server(env: str, layer: str, endpoint: Endpoint) -> Server:
    """The entry as a Server, or UnsafeEntry naming what is wrong (never echoing the whole value)."""
    for kind, value in (("env", env), ("layer", layer), ("instance id", endpoint.instance_id)):
        try:
            names.check_name_part(kind, value)
        except (ValueError, TypeError):
            raise UnsafeEntry(f"{kind} is not a valid name") from None
    if not isinstance(endpoint.address, str):
        raise UnsafeEntry("address is not a string")
    try:
        literal = ip_literal(endpoint.address)
    except ValueError:
        raise UnsafeEntry("address is not an IP address nginx can use (IPv4, or IPv6 without a zone)") from None
    port = endpoint.port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UnsafeEntry("port is not an integer in 1..65535")
    return Server(endpoint.instance_id, literal, port)


def ip_literal(value: str) -> str:
    """``value`` as it goes into a URL or an nginx ``listen``/``server`` (IPv6 bracketed); ValueError if it
    is not an IPv4 or IPv6 address, or is an IPv6 address with a zone (``fe80::1%eth0``).

    Python's ipaddress accepts a zone of any characters (``%eth0;}``, a newline) and keeps it in
    ``compressed``; nginx takes no zone in ``server`` or ``listen`` and fails ``nginx -t``, which
    would freeze every proxy's configuration. A zone only means something on one host's link anyway.
    """
    address = ip_address(value)  # refuses a zone: see skynet_tasks.addresses
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def check_hostport(value: str) -> str:
    """``ip:port`` of a service the proxy fronts (configuration, but checked the same way)."""
    host, _, port = value.rpartition(":")
    server = check_server("local", "webhook", Endpoint("webhook", "", host.strip("[]"), int(port) if port.isdigit()
                                                       else -1, "", "", 0))
    return f"{server.address}:{server.port}"


def _shown_id(instance_id: object) -> str:
    """The instance id for a log line: as it is if it is a valid name, else a bounded repr (never raw)."""
    try:
        return names.check_name_part("instance id", instance_id)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return repr(instance_id)[:40]


def build_view(env: str, entries: Iterable[tuple[str, Endpoint]], webhook: str | None = None) -> ProxyView:
    """Group live, healthy entries by layer; ``entries`` are (layer, endpoint) pairs already filtered by age."""
    by_layer: dict[str, list[Server]] = {}
    refused = []
    for layer, endpoint in entries:
        if layer == "rp":
            continue  # the proxies do not proxy to themselves
        by_layer.setdefault(layer, [])
        try:
            server = check_server(env, layer, endpoint)
        except UnsafeEntry as error:
            who = _shown_id(endpoint.instance_id)
            log.warning("registry entry %s of %s/%s refused, left out of the proxy configuration: %s",
                        who, env, layer, error)
            refused.append(f"{layer}/{who}: {error}")
            continue
        if endpoint.health == Health.HEALTHY:
            by_layer[layer].append(server)
    upstreams = []
    for layer in sorted(by_layer):
        try:
            names.check_name_part("layer", layer)
        except ValueError:
            refused.append("a layer name is not valid")
            continue
        upstreams.append(Upstream(env, layer, tuple(sorted(by_layer[layer], key=lambda s: s.instance_id))))
    return ProxyView(tuple(upstreams), check_hostport(webhook) if webhook else None, tuple(refused))
