"""The load balancer stand-in as a process: real HTTP instances on 127.0.0.x, requests through it.

Given instances behind it, when their health changes or the targets file does,
then requests go where an ALB would send them.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from lbkit import FAST_CHECK, WORKTREE, A, B, Balancer, Instance, instance_pair, instances, wait_until, write_targets

from skynet_tasks.local.motoserver import free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pair() -> Iterator[tuple[Instance, Instance]]:
    with instance_pair() as started:
        yield started


@pytest.fixture
def balancers() -> Iterator[list[Balancer]]:
    made: list[Balancer] = []
    yield made
    for balancer in made:
        balancer.terminate()


def served_by(balancer: Balancer, count: int) -> Counter[str]:
    answers = [balancer.get() for _ in range(count)]
    assert all(status == 200 for status, _ in answers), answers
    return Counter(body for _, body in answers)


def healthy(balancer: Balancer, *instances: Instance) -> None:
    for instance in instances:
        balancer.wait_log(f"target {instance.name}:{instance.server_port} healthy")


def test_requests_are_spread_round_robin_over_two_healthy_targets(tmp_path, pair, balancers):
    a, b = pair
    lb = Balancer(tmp_path, [f"{A}:{a.server_port}", f"{B}:{b.server_port}"])
    balancers.append(lb)
    healthy(lb, a, b)
    assert served_by(lb, 20) == {A: 10, B: 10}


def test_a_failing_target_leaves_after_unhealthy_threshold_checks_and_returns_after_healthy_threshold(
        tmp_path, pair, balancers):
    a, b = pair
    lb = Balancer(tmp_path, [f"{A}:{a.server_port}", f"{B}:{b.server_port}"])
    balancers.append(lb)
    healthy(lb, a, b)

    b.health = 503
    deadline = time.monotonic() + 10
    while f"target {B}:{b.server_port} unhealthy" not in lb.log():
        assert time.monotonic() < deadline, lb.log()
        served_by(lb, 2)
    assert served_by(lb, 20) == {A: 20}
    events = b.snapshot()
    last_request = len(events) - events[::-1].index("request")
    failed_before = events[events.index("fail"):last_request].count("fail")
    # Still in rotation after threshold-1 failures, out of it by the threshold-th.
    assert FAST_CHECK["unhealthy_threshold"] - 1 <= failed_before <= FAST_CHECK["unhealthy_threshold"], events

    b.health = 200
    mark = len(b.snapshot())
    wait_until(lambda: B in served_by(lb, 2), 10, f"{B} back in rotation")
    events = b.snapshot()[mark:]
    assert events[:events.index("request")].count("pass") >= FAST_CHECK["healthy_threshold"], events
    assert "fail" not in events


def test_a_connection_in_flight_to_a_target_turning_unhealthy_is_not_cut(tmp_path, pair, balancers):
    a, b = pair
    lb = Balancer(tmp_path, [f"{B}:{b.server_port}", f"{A}:{a.server_port}"])
    balancers.append(lb)
    healthy(lb, a, b)
    kept = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=5)
    owner = ""
    for _ in range(2):  # round robin: one of two fresh connections lands on B
        kept.close()
        kept.request("GET", "/")
        owner = kept.getresponse().read().decode()
        if owner == B:
            break
    assert owner == B

    b.health = 503
    lb.wait_log(f"target {B}:{b.server_port} unhealthy")
    kept.request("GET", "/")
    response = kept.getresponse()
    assert (response.status, response.read().decode()) == (200, B)
    kept.close()
    assert served_by(lb, 6) == {A: 6}


def test_a_target_refusing_connections_is_skipped_without_a_failed_request(tmp_path, balancers):
    # Both pass their checks on a health port, but B's traffic port has nothing listening.
    health_a, health_b = instances(A, B)
    traffic = Instance(A, 0, A)
    port = traffic.server_port
    try:
        check = {**FAST_CHECK, "port": health_a.server_port}
        lb = Balancer(tmp_path, [f"{A}:{port}", f"{B}:{port}"], check)
        balancers.append(lb)
        lb.wait_log(f"target {A}:{port} healthy")
        lb.wait_log(f"target {B}:{port} healthy")
        assert served_by(lb, 10) == {A: 10}
        assert f"target {B}:{port} refused a connection" in lb.log()
    finally:
        for instance in (health_a, health_b, traffic):
            instance.stop()


def test_with_no_healthy_target_it_fails_open_to_all_targets(tmp_path, pair, balancers):
    a, b = pair
    a.health = b.health = 503
    lb = Balancer(tmp_path, [f"{A}:{a.server_port}", f"{B}:{b.server_port}"])
    balancers.append(lb)
    lb.wait_log(f"target {A}:{a.server_port} unhealthy")
    lb.wait_log(f"target {B}:{b.server_port} unhealthy")
    assert "fail-open" in lb.log()
    assert served_by(lb, 10) == {A: 5, B: 5}

    a.health = 200
    healthy(lb, a)
    assert "fail-open over" in lb.log()
    assert served_by(lb, 6) == {A: 6}


@pytest.mark.parametrize("listed", [[], ["127.0.0.2:{port}", "127.0.0.3:{port}"]],
                         ids=["no target registered", "every target refuses"])
def test_a_client_no_target_takes_gets_a_502(tmp_path, balancers, listed):
    port = free_port(A)  # nothing listens on it, on A or on B
    lb = Balancer(tmp_path, [t.format(port=port) for t in listed])
    balancers.append(lb)
    assert lb.get() == (502, "Bad Gateway\n")
    assert lb.get("/health") == (502, "Bad Gateway\n")


def test_targets_file_changes_are_followed(tmp_path, pair, balancers):
    a, b = pair
    lb = Balancer(tmp_path, [f"{A}:{a.server_port}"])
    balancers.append(lb)
    healthy(lb, a)
    assert served_by(lb, 4) == {A: 4}

    write_targets(lb.targets_file, [f"{A}:{a.server_port}", f"{B}:{b.server_port}"])
    wait_until(lambda: B in served_by(lb, 2), 10, f"{B} in rotation")
    events = b.snapshot()
    assert events[:events.index("request")].count("pass") >= FAST_CHECK["healthy_threshold"], events

    lb.targets_file.write_text("not an address\n")  # a broken rewrite keeps the last good targets
    lb.wait_log("targets unreadable, keeping the last ones")
    assert served_by(lb, 4) == {A: 2, B: 2}

    write_targets(lb.targets_file, [f"{B}:{b.server_port}"])
    lb.wait_log(f"target {A}:{a.server_port} deregistered")
    assert served_by(lb, 4) == {B: 4}


def test_a_target_group_description_configures_it(tmp_path, pair, balancers):
    a, b = pair
    group = {"TargetGroupName": "skynet-local-rp", "Protocol": "HTTP", "Port": a.server_port,
             "HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port", "HealthCheckEnabled": True,
             "HealthCheckIntervalSeconds": 0.25, "HealthCheckTimeoutSeconds": 0.2, "HealthyThresholdCount": 2,
             "UnhealthyThresholdCount": 2, "HealthCheckPath": "/health", "Matcher": {"HttpCode": "200"}}
    lb = Balancer(tmp_path, [A, B], group, option="--target-group-json")  # no port: the group's Port
    balancers.append(lb)
    healthy(lb, a, b)
    assert served_by(lb, 4) == {A: 2, B: 2}


def test_sigterm_lets_a_request_in_flight_finish_and_exits_cleanly(tmp_path, pair, balancers):
    a, _ = pair
    lb = Balancer(tmp_path, [f"{A}:{a.server_port}"])
    balancers.append(lb)
    healthy(lb, a)
    assert json.loads((tmp_path / "ready.json").read_text())["port"] == lb.port
    answers: list[tuple[int, str]] = []
    slow = threading.Thread(target=lambda: answers.append(lb.get("/slow")))
    slow.start()
    wait_until(lambda: "request" in a.snapshot(), 5, "the slow request at the instance")
    assert lb.terminate() == 0
    slow.join(5)
    assert answers == [(200, A)]
    assert "stopped" in lb.log()
    with pytest.raises(ConnectionRefusedError):
        lb.get()


def test_keep_alive_requests_do_not_wait_on_nagle(tmp_path, pair, balancers):
    # A request sent in two writes (head, then body) is where Nagle and delayed ACKs cost 40 ms.
    a, _ = pair
    lb = Balancer(tmp_path, [f"{A}:{a.server_port}"])
    balancers.append(lb)
    healthy(lb, a)
    connection = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=5)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # any delay left is the balancer's
    durations = []
    for _ in range(30):
        started = time.perf_counter()
        connection.putrequest("POST", "/")
        connection.putheader("Content-Length", "5")
        connection.endheaders()
        connection.send(b"hello")
        assert connection.getresponse().read() == A.encode()
        durations.append(time.perf_counter() - started)
    connection.close()
    assert sorted(durations)[15] < 0.02, durations


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skynet_tasks.local.loadbalancer", *args], capture_output=True,
                          text=True, timeout=30, cwd=WORKTREE,
                          env={"PYTHONPATH": str(WORKTREE), "PATH": "/usr/bin:/bin"})


GOOD = {"listen": "127.0.0.1:0", "targets": "", "--health-check-json": "{}"}
BAD = {  # what differs from a good start, and what the error says
    "unknown key": ({"--health-check-json": '{"path": "/health", "intervl": 5}'},
                    "unknown health check key(s) intervl"),
    "negative interval": ({"--health-check-json": '{"interval": -1}'}, "interval must be a positive number"),
    "path without slash": ({"--health-check-json": '{"path": "health"}'}, "path 'health' must start with '/'"),
    "timeout not under interval": ({"--health-check-json": '{"interval": 1}'}, "must be shorter than its interval"),
    "not JSON": ({"--health-check-json": "{path"}, "not JSON"),
    "both configs": ({"--target-group-json": "{}"}, "exactly one of"),
    "TCP health check": ({"--health-check-json": None, "--target-group-json": '{"HealthCheckProtocol": "TCP"}'},
                         "HTTP only"),
    "hostname target": ({"targets": "rp.example.com:8000\n"}, "must be an IP address"),
    "target without port": ({"targets": "10.213.1.4\n"}, "expected HOST:PORT"),
    "listen without port": ({"listen": "127.0.0.1"}, "expected HOST:PORT"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_configuration_is_refused_at_start(tmp_path, case):
    change, message = BAD[case]
    settings = {**GOOD, **change}
    targets = tmp_path / "targets.txt"
    targets.write_text(str(settings.pop("targets")))
    args = ["--listen", str(settings.pop("listen")), "--targets-file", str(targets)]
    args += [item for option, value in settings.items() if value is not None for item in (option, value)]
    done = run_cli(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stdout == ""


def test_a_missing_targets_file_is_refused_at_start(tmp_path):
    done = run_cli("--listen", "127.0.0.1:0", "--targets-file", str(tmp_path / "nowhere"), "--health-check-json", "{}")
    assert done.returncode == 2
    assert "nowhere" in done.stderr and "No such file" in done.stderr


def test_an_address_already_in_use_is_refused_at_start(tmp_path, pair):
    a, _ = pair
    targets = tmp_path / "targets.txt"
    targets.write_text("")
    done = run_cli("--listen", f"{A}:{a.server_port}", "--targets-file", str(targets), "--health-check-json", "{}")
    assert done.returncode == 1
    assert f"load balancer on {A}:{a.server_port}" in done.stderr and "in use" in done.stderr
