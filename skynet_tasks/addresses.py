"""IP addresses as Skynet takes them: an instance's own, a registry entry's, a proxy's listen address.

Each of them ends up in an nginx ``server`` or ``listen`` line, a URL, or both. Python's
``ipaddress`` accepts an IPv6 zone of any characters (``fe80::1%eth0;}``, a newline) and keeps
it in ``compressed``; nginx takes no zone there and fails ``nginx -t``. A zone only means
something on one host's link anyway, so none is taken anywhere.
"""

from __future__ import annotations

import ipaddress


def ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``value`` as an IPv4 or IPv6 address; ValueError if it is neither, or is an IPv6 address with a zone."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ValueError(f"{value!r} is an IPv6 address with a zone, which nginx does not take")
    return address
