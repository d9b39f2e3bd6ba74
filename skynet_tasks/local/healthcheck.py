"""A target group's health check, as the load balancer stand-in applies it.

Built either from our own JSON keys (strict: an unknown key is an error) or from a
target group as ELBv2's ``describe_target_groups`` returns it, on top of the
defaults AWS gives an HTTP target group of an Application Load Balancer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


class ConfigError(ValueError):
    """A health check, target or listen address the load balancer stand-in cannot use."""


def parse_codes(text: str) -> tuple[tuple[int, int], ...]:
    """Ranges of an ELBv2 matcher's ``HttpCode``: ``"200"``, ``"200,202"`` or ``"200-299"``."""
    ranges = []
    for part in str(text).split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ConfigError(f"success codes {text!r}: expected codes like 200, 200,202 or 200-299") from None
        if not 200 <= first <= last <= 499:
            # ALB accepts 200 to 499 only: a 5xx can never mean healthy.
            raise ConfigError(f"success codes {text!r}: codes must lie between 200 and 499")
        ranges.append((first, last))
    return tuple(ranges)


@dataclass(frozen=True)
class HealthCheck:
    """How targets are checked; ``port`` None means each target's own (traffic) port."""

    # AWS's defaults for an HTTP target group of an ALB.
    path: str = "/"
    interval: float = 30.0
    timeout: float = 5.0
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    port: int | None = None
    success_codes: tuple[tuple[int, int], ...] = ((200, 200),)

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ConfigError(f"health check path {self.path!r} must start with '/'")
        if any(c.isspace() or ord(c) < 32 for c in self.path):
            raise ConfigError(f"health check path {self.path!r} must not contain spaces or control characters")
        for name in ("interval", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"health check {name} must be a positive number of seconds, got {value!r}")
        if self.timeout >= self.interval:
            # As on AWS: a check must end before the next one starts.
            raise ConfigError(f"health check timeout ({self.timeout}) must be shorter than its interval "
                              f"({self.interval})")
        for name in ("healthy_threshold", "unhealthy_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"health check {name} must be a whole number of at least 1, got {value!r}")
        if self.port is not None and (isinstance(self.port, bool) or not isinstance(self.port, int)
                                      or not 1 <= self.port <= 65535):
            raise ConfigError(f"health check port must be 1 to 65535 or null (the target's port), got {self.port!r}")

    def passes(self, status: int) -> bool:
        """Whether an HTTP status counts as a passing check."""
        return any(low <= status <= high for low, high in self.success_codes)

    def port_for(self, target_port: int) -> int:
        """The port a target is checked on."""
        return self.port if self.port is not None else target_port

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HealthCheck:
        """From our own keys (the dataclass's fields; ``success_codes`` as a matcher string), over AWS's defaults."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"health check must be a JSON object, got {type(config).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"unknown health check key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(config)
        if "success_codes" in values:
            values["success_codes"] = parse_codes(values["success_codes"])
        return replace(cls(), **values)

    @classmethod
    def from_target_group(cls, group: Mapping[str, Any]) -> HealthCheck:
        """From one item of ``describe_target_groups()["TargetGroups"]``; keys it lacks keep AWS's defaults."""
        if not isinstance(group, Mapping):
            raise ConfigError(f"target group must be a JSON object, got {type(group).__name__}")
        protocol = group.get("HealthCheckProtocol", group.get("Protocol", "HTTP"))
        if protocol != "HTTP":
            raise ConfigError(f"health check protocol {protocol!r} is not supported by the stand-in (HTTP only)")
        if group.get("HealthCheckEnabled") is False:
            raise ConfigError("target group has its health check disabled, which an ALB instance target group "
                              "cannot have")
        values: dict[str, Any] = {}
        for key, name in (("HealthCheckPath", "path"), ("HealthCheckIntervalSeconds", "interval"),
                          ("HealthCheckTimeoutSeconds", "timeout"), ("HealthyThresholdCount", "healthy_threshold"),
                          ("UnhealthyThresholdCount", "unhealthy_threshold")):
            if key in group:
                values[name] = group[key]
        port = group.get("HealthCheckPort", "traffic-port")
        if port != "traffic-port":
            try:
                values["port"] = int(port)
            except (TypeError, ValueError):
                raise ConfigError(f"HealthCheckPort {port!r}: expected 'traffic-port' or a port number") from None
        matcher = group.get("Matcher") or {}
        if "HttpCode" in matcher:
            values["success_codes"] = parse_codes(matcher["HttpCode"])
        return replace(cls(), **values)
