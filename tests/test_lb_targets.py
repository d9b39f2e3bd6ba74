"""The load balancer stand-in's decisions as data: health checks parsed, thresholds, fail-open, round robin."""

from __future__ import annotations

import logging

import pytest

from skynet_tasks.local.healthcheck import ConfigError, HealthCheck
from skynet_tasks.local.targets import Target, TargetHealth, TargetPool, TargetState, read_targets_file

pytestmark = pytest.mark.timeout(10)

CHECK = HealthCheck(path="/health", interval=10, healthy_threshold=2, unhealthy_threshold=3)
A, B, C = Target("10.213.1.4", 8000), Target("10.213.1.5", 8000), Target("10.213.1.6", 8000)


def test_the_stacks_target_group_gives_its_own_values_and_aws_defaults_for_the_rest():
    # What describe_target_groups says of RpTargetGroup (cloudformation/php-nginx.yaml) when AWS filled the defaults.
    group = {"TargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/skynet-prod-rp/1",
             "TargetGroupName": "skynet-prod-rp", "Protocol": "HTTP", "Port": 8000, "VpcId": "vpc-1",
             "HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port", "HealthCheckEnabled": True,
             "HealthCheckIntervalSeconds": 10, "HealthCheckTimeoutSeconds": 5, "HealthyThresholdCount": 2,
             "UnhealthyThresholdCount": 2, "HealthCheckPath": "/health", "Matcher": {"HttpCode": "200"},
             "LoadBalancerArns": [], "TargetType": "instance", "ProtocolVersion": "HTTP1"}
    check = HealthCheck.from_target_group(group)
    assert check == HealthCheck(path="/health", interval=10, timeout=5, healthy_threshold=2, unhealthy_threshold=2)
    assert check.port_for(8000) == 8000
    assert HealthCheck.from_target_group({"HealthCheckPath": "/health", "HealthCheckIntervalSeconds": 10,
                                          "HealthyThresholdCount": 2}) == check


def test_a_health_port_and_a_code_range_are_honoured():
    check = HealthCheck.from_target_group({"HealthCheckPort": "8081", "Matcher": {"HttpCode": "200-299,301"}})
    assert check.port_for(8000) == 8081
    assert [check.passes(s) for s in (200, 204, 299, 300, 301, 302, 503)] == [True, True, True, False, True, False,
                                                                                 False]


@pytest.mark.parametrize(("config", "message"), [
    ({"path": "/health", "intervl": 5}, "unknown health check key(s) intervl"),
    ({"interval": -1}, "interval must be a positive number"),
    ({"interval": "10"}, "interval must be a positive number"),
    ({"path": "health"}, "must start with '/'"),
    ({"path": "/health now"}, "must not contain spaces"),
    ({"interval": 5, "timeout": 5}, "timeout (5) must be shorter than its interval (5)"),
    ({"healthy_threshold": 0}, "healthy_threshold must be a whole number of at least 1"),
    ({"unhealthy_threshold": 1.5}, "unhealthy_threshold must be a whole number"),
    ({"port": 70000}, "port must be 1 to 65535"),
    ({"success_codes": "500"}, "between 200 and 499"),
    ({"success_codes": "ok"}, "expected codes like"),
])
def test_a_bad_health_check_is_refused_with_what_is_wrong(config, message):
    with pytest.raises(ConfigError) as raised:
        HealthCheck.from_config(config)
    assert message in str(raised.value)


@pytest.mark.parametrize(("group", "message"), [
    ({"HealthCheckProtocol": "HTTPS"}, "HTTP only"),
    ({"HealthCheckEnabled": False}, "disabled"),
    ({"HealthCheckPort": "eighty"}, "expected 'traffic-port' or a port number"),
])
def test_a_target_group_the_stand_in_cannot_play_is_refused(group, message):
    with pytest.raises(ConfigError, match=message):
        HealthCheck.from_target_group(group)


def states(results: str, start: TargetHealth | None = None) -> list[TargetState]:
    """The state after each result of ``results`` (``+`` a passing check, ``-`` a failing one)."""
    health, seen = start or TargetHealth(), []
    for result in results:
        health = health.after(result == "+", CHECK)
        seen.append(health.state)
    return seen


H, U, I = TargetState.HEALTHY, TargetState.UNHEALTHY, TargetState.INITIAL  # noqa: E741 - the states' initials


def test_a_new_target_is_healthy_after_healthy_threshold_consecutive_passes():
    assert states("++") == [I, H]
    assert states("+-+-++") == [I, I, I, I, I, H]  # only consecutive passes count


def test_a_healthy_target_is_unhealthy_after_unhealthy_threshold_consecutive_failures():
    assert states("++--+---") == [I, H, H, H, H, H, H, U]
    assert states("---++") == [I, I, U, U, H]  # a new target that fails is unhealthy, then recovers


def test_the_round_robin_goes_over_healthy_targets_and_offers_the_others_as_fallbacks():
    pool = TargetPool(CHECK)
    pool.sync([A, B, C])
    for target in (A, B):
        pool.record(target, True)
        pool.record(target, True)
    assert [pool.choose() for _ in range(3)] == [[A, B], [B, A], [A, B]]


def test_with_no_target_healthy_every_target_takes_traffic(caplog):
    caplog.set_level(logging.INFO)
    pool = TargetPool(CHECK)
    pool.sync([A, B])
    assert pool.routable() == [A, B]
    assert "fail-open" in caplog.text
    pool.record(B, True)
    pool.record(B, True)
    assert pool.routable() == [B]
    assert "fail-open over" in caplog.text


def test_targets_that_go_away_get_no_connection_and_come_back_initial():
    pool = TargetPool(CHECK)
    pool.sync([A, B])
    for _ in range(2):
        pool.record(A, True)
    pool.sync([B])
    pool.record(A, True)  # a check that was in flight when A left changes nothing
    assert pool.states() == {B: I}
    assert pool.choose() == [B]
    pool.sync([A, B])
    assert pool.states() == {A: I, B: I}
    pool.sync([])
    assert pool.choose() == []


def test_the_targets_file_lists_addresses_with_ports(tmp_path):
    path = tmp_path / "targets"
    path.write_text("# the RP group\n10.213.1.4:8000\n\n10.213.1.5  # no port: the group's\n"
                    "[::1]:8000\n10.213.1.4:8000\n")
    assert read_targets_file(path, default_port=8000) == [A, B, Target("::1", 8000)]
    with pytest.raises(ConfigError, match=r"targets:4: .*expected HOST:PORT"):
        read_targets_file(path)
    path.write_text("rp-1.internal:8000\n")
    with pytest.raises(ConfigError, match="must be an IP address"):
        read_targets_file(path)
