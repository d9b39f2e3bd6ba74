"""The reverse-proxy layer: registry entries checked, nginx rendered, validated, swapped and reloaded.

Real nginx (Debian's) on a loopback port, real DynamoDB on moto's server, two tiny
HTTP backends standing in for API instances. The configuration rendered without nginx (hostile
entries, healthy instances only, the listen address) is ``test_proxy_render.py``'s.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from proxykit import HOSTILE, endpoint

from skynet_tasks import names
from skynet_tasks.app import create_app
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.context import Context
from skynet_tasks.local.motoserver import MotoServer, free_port
from skynet_tasks.proxy.handshake import lagging_proxies
from skynet_tasks.proxy.nginx import NginxControl
from skynet_tasks.proxy.render import TEMPLATES
from skynet_tasks.proxy.runtime import proxy_health, proxy_sync, start_proxy, stop_proxy
from skynet_tasks.proxy.sync import RpSync
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.settings import Settings
from skynet_tasks.states import Health

pytestmark = pytest.mark.timeout(90)


class Backend:
    """A stand-in API instance answering its own name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N805
                body = json.dumps({"instance": name, "path": handler.path}).encode()
                handler.send_response(200)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args: object) -> None:  # noqa: N805
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def aws():
    server = MotoServer.start()
    aws = aws_for(server.environment())
    bootstrap_env(aws, resolve(aws, "local"), ["local-api"])
    yield aws
    server.stop()


@pytest.fixture(scope="module")
def proxy(aws, tmp_path_factory):
    registry = Registry(aws.dynamodb, names.endpoints_table("local"))
    backends = {name: Backend(name) for name in ("api-1", "api-2")}
    for name, backend in backends.items():
        registry.register("local", "api", endpoint(name, backend.port))
    port = free_port()
    control = NginxControl(tmp_path_factory.mktemp("rp"), listen_port=port, listen_address="127.0.0.1")
    sync = RpSync(registry, "local", 30, control, port, "127.0.0.1")
    sync.start()
    yield sync, registry, backends, f"http://127.0.0.1:{port}"
    sync.control.stop()
    for backend in backends.values():
        backend.stop()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def served_by(url: str, count: int = 12) -> set[str]:
    answers = [get(f"{url}/api/local/") for _ in range(count)]
    assert all(status == 200 for status, _ in answers), answers
    return {body["instance"] for _, body in answers}


def test_requests_through_the_proxy_reach_every_registered_instance(proxy):
    sync, registry, backends, url = proxy

    assert served_by(url) == {"api-1", "api-2"}
    status, body = get(f"{url}/api/local/orders?id=1")
    assert status == 200 and body["path"] == "/orders?id=1"  # the layer prefix is stripped
    assert get(f"{url}/nothing/here")[0] == 404


def test_a_deregistered_or_stale_instance_stops_receiving_requests(proxy):
    sync, registry, backends, url = proxy

    registry.deregister("local", "api", "api-2")
    assert sync.sync_once().reloaded
    assert served_by(url) == {"api-1"}

    registry.register("local", "api", endpoint("api-2", backends["api-2"].port))
    registry.register("local", "api", endpoint("api-1", backends["api-1"].port, heartbeat=time.time() - 600))
    sync.sync_once()
    assert served_by(url) == {"api-2"}

    registry.register("local", "api", endpoint("api-1", backends["api-1"].port))
    sync.sync_once()
    assert served_by(url) == {"api-1", "api-2"}


def test_an_unchanged_registry_does_not_reload_nginx(proxy):
    sync, *_ = proxy
    sync.sync_once()

    again = sync.sync_once()

    assert again.ok and not again.changed and not again.reloaded


def test_a_hostile_entry_is_refused_and_the_running_config_stays_valid(proxy):
    sync, registry, backends, url = proxy
    for name, change in HOSTILE.items():
        fields = {**endpoint("api-3", 9).__dict__, **change}
        registry.register("local", "api", Endpoint(**fields))
        result = sync.sync_once()
        assert result.ok, name
        text = sync.control.conf.read_text()
        assert "passwd" not in text and "6.6.6.6" not in text and "evil" not in text
        assert served_by(url, 6) <= {"api-1", "api-2"}
        registry.deregister("local", "api", fields["instance_id"])
    sync.sync_once()
    assert sync.control.status()["refused_entries"] == []  # none left behind for the next test


def test_an_entry_nginx_cannot_parse_does_not_keep_a_new_member_out_and_is_named_in_status(proxy, caplog):
    # An address with an IPv6 zone passed the check and failed nginx -t: every proxy kept its old
    # configuration, so a member that joined later never received a request.
    sync, registry, backends, url = proxy
    newcomer = Backend("api-new")
    try:
        registry.register("local", "api", endpoint("api-zoned", 9, address="fe80::1%eth0"))
        registry.register("local", "api", endpoint("api-new", newcomer.port))
        with caplog.at_level(logging.WARNING, logger="skynet_tasks.proxy.model"):
            result = sync.sync_once()

        assert result.ok and result.reloaded
        assert "api-new" in served_by(url, 12)
        assert "fe80" not in sync.control.conf.read_text()
        (refused,) = sync.control.status()["refused_entries"]
        assert refused.startswith("api/api-zoned: address is not an IP address nginx can use")
        assert "registry entry api-zoned of local/api refused" in caplog.text
    finally:
        registry.deregister("local", "api", "api-zoned")
        registry.deregister("local", "api", "api-new")
        newcomer.stop()
        sync.sync_once()
    assert sync.control.status()["refused_entries"] == []


def test_a_configuration_nginx_refuses_is_never_loaded_and_the_failure_shows_in_status(proxy, tmp_path):
    sync, registry, backends, url = proxy
    before = sync.control.conf.read_text()
    broken = tmp_path / "templates"
    broken.mkdir()
    (broken / "nginx.conf.j2").write_text((TEMPLATES / "nginx.conf.j2").read_text().replace(
        "keepalive 16;", "keepalive sixteen;"))
    registry.deregister("local", "api", "api-2")  # a change that must not get through
    bad = RpSync(registry, "local", 30, sync.control, sync.listen_port, sync.listen_address, template_dir=broken)

    result = bad.sync_once()

    assert not result.ok and not result.reloaded and "keepalive" in (result.error or "")
    assert sync.control.conf.read_text() == before
    assert served_by(url) == {"api-1", "api-2"}  # the old configuration still serves both
    status = sync.control.status()
    assert status["ok"] is False and "keepalive" in str(status["error"]) and status["last_ok"]

    broken_jinja = tmp_path / "jinja"
    broken_jinja.mkdir()
    (broken_jinja / "nginx.conf.j2").write_text("{{ no_such_value }}")
    failed = RpSync(registry, "local", 30, sync.control, sync.listen_port, sync.listen_address,
                    template_dir=broken_jinja).sync_once()
    assert not failed.ok and "nginx template" in (failed.error or "")
    assert sync.control.conf.read_text() == before

    registry.register("local", "api", endpoint("api-2", backends["api-2"].port))
    assert sync.sync_once().ok


def test_a_proxy_records_which_registry_read_it_serves_and_never_applies_an_older_one(proxy):
    sync, registry, backends, url = proxy
    registry.register("local", "rp", endpoint("rp-1", 80))
    publishing = RpSync(registry, "local", 30, sync.control, sync.listen_port, sync.listen_address, instance_id="rp-1")

    # An instance drains: until the proxy has synced after that write, the proxy is lagging for it
    registry.register("local", "api", endpoint("api-2", backends["api-2"].port, health="draining"))
    drained_at = time.time()
    assert lagging_proxies(registry, "local", drained_at, 30) == ["rp-1"]
    publishing.sync_once()
    assert lagging_proxies(registry, "local", drained_at, 30) == []
    assert served_by(url) == {"api-1"}
    assert sync.control.synced_at() >= drained_at

    # A sync that read the registry before the running configuration's read changes nothing
    registry.register("local", "api", endpoint("api-2", backends["api-2"].port))
    stale = sync.control.apply(publishing.render_now(), read_at=drained_at - 60)
    assert stale.ok and not stale.changed and served_by(url) == {"api-1"}

    publishing.sync_once()
    assert served_by(url) == {"api-1", "api-2"}
    registry.deregister("local", "rp", "rp-1")


def reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_the_proxy_layer_listens_on_the_instances_own_address(aws, proxy, tmp_path, caplog):
    # Given an RP instance whose address is not 127.0.0.1 (on EC2: its private address, which the
    # load balancer's health check reaches); Linux answers on all of 127.0.0.0/8
    _, registry, backends, _ = proxy
    port = free_port("127.0.0.2")
    settings = Settings.from_env({"SKYNET_ENV": "local", "SKYNET_LAYER": "rp", "SKYNET_INSTANCE_ID": "rp-9",
                                  "SKYNET_ROOT": str(tmp_path), "SKYNET_ADDRESS": "127.0.0.2",
                                  "SKYNET_APP_PORT": str(port)})
    ctx = Context.create(settings, create_app(), aws)

    # When the worker starts its proxy
    with caplog.at_level(logging.INFO, logger="skynet_tasks.proxy.runtime"):
        poll = start_proxy(ctx)
    try:
        # Then nginx answers on that address, and only there
        assert served_by(f"http://127.0.0.2:{port}") == {"api-1", "api-2"}
        assert get(f"http://127.0.0.2:{port}/health") == (200, {"ok": True})
        assert not reachable("127.0.0.1", port)
        assert proxy_health(ctx) == Health.HEALTHY
        assert f"proxy listening on 127.0.0.2:{port}" in caplog.text
        # and a reload is confirmed by its own health check on that address
        registry.deregister("local", "api", "api-2")
        assert proxy_sync(ctx).sync_once().reloaded
        assert served_by(f"http://127.0.0.2:{port}") == {"api-1"}
    finally:
        stop_proxy(ctx, poll)
        registry.register("local", "api", endpoint("api-2", backends["api-2"].port))
