"""The reverse-proxy layer's configuration, rendered without nginx: registry entries checked, hostile values
kept out, only healthy instances routed, and the listen address checked and written as nginx takes it.

Nothing runs here; the rendered configuration served by real nginx is ``test_proxy.py``'s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from proxykit import HOSTILE, endpoint

from skynet_tasks.proxy.model import build_view
from skynet_tasks.proxy.render import RenderError, render
from skynet_tasks.registry import Endpoint
from skynet_tasks.settings import Settings, SettingsError

pytestmark = pytest.mark.timeout(90)


def test_hostile_registry_values_never_reach_the_configuration_and_the_rest_still_renders(tmp_path):
    entries = [("api", endpoint("api-1", 8001))]
    for change in HOSTILE.values():
        fields = {**endpoint(f"api-{len(entries) + 1}", 8002).__dict__, **change}
        entries.append(("api", Endpoint(**fields)))
    entries.append(("api", endpoint("api-v6", 8003, address="::1")))

    view = build_view("local", entries)
    text = render(view, "local", tmp_path, 8080, listen_address="127.0.0.1")

    assert len(view.refused) == len(HOSTILE)
    assert "server 127.0.0.1:8001" in text and "server [::1]:8003" in text
    for bad in ("passwd", "80}", "6.6.6.6", "evil.example.com", "70000", "%", "fe80"):
        assert bad not in text


def test_only_healthy_instances_are_routed_and_an_empty_layer_answers_503(tmp_path):
    view = build_view("local", [("api", endpoint("api-1", 8001, health="draining")),
                                ("api", endpoint("api-2", 8002, health="unhealthy"))])
    text = render(view, "local", tmp_path, 8080, listen_address="127.0.0.1")

    assert "upstream local__api" not in text
    assert "return 503" in text and "location /api/local/" in text

@pytest.mark.parametrize("address", ["localhost", "127.0.0.1; include /etc/passwd", "10.0.0.300"])
def test_an_instance_address_that_is_not_an_ip_is_refused(address):
    with pytest.raises(SettingsError, match="SKYNET_ADDRESS=.* is not an IP address"):
        Settings.from_env({"SKYNET_ADDRESS": address})
    with pytest.raises(RenderError, match="listen address: .* is not an IP address"):
        render(build_view("local", []), "local", Path("/run"), 8080, listen_address=address)


def test_a_listen_address_with_an_ipv6_zone_is_refused_before_nginx_sees_it():
    with pytest.raises(RenderError, match="listen address: .* with a zone, which nginx does not take"):
        render(build_view("local", []), "local", Path("/run"), 8080, listen_address="fe80::1%eth0")


def test_an_ipv6_instance_address_is_bracketed_where_nginx_listens():
    text = render(build_view("local", []), "local", Path("/run"), 8080, listen_address="fd00::1")

    assert "listen [fd00::1]:8080;" in text
