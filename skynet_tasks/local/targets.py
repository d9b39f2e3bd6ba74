"""The targets of the load balancer stand-in: their health as ALB tracks it, and whom a connection goes to.

Pure: no sockets here. Health results come in, routing decisions come out, so the
thresholds, fail-open and round robin are tested as data.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from skynet_tasks.local.healthcheck import ConfigError, HealthCheck

log = logging.getLogger(__name__)


class Target(NamedTuple):
    """A registered target's address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, default_port: int | None = None, what: str = "target") -> Target:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6) with HOST an IP literal, never a name."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: the host must be an IP address") from None
    if not port_text and default_port is not None:
        return Target(host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535 or (what == "target" and int(port_text) == 0):
        raise ConfigError(f"{what} {text!r}: expected HOST:PORT with a port number")
    return Target(host, int(port_text))


def read_targets_file(path: Path, default_port: int | None = None) -> list[Target]:
    """The targets listed in a file: one ``HOST:PORT`` a line; blank lines and ``#`` comments ignored."""
    targets: list[Target] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            target = parse_address(line, default_port)
        except ConfigError as error:
            raise ConfigError(f"{path}:{number}: {error}") from None
        if target not in targets:
            targets.append(target)
    return targets


class TargetState(StrEnum):
    """A target's health as the load balancer sees it."""

    INITIAL = "initial"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class TargetHealth:
    """A target's state and its run of consecutive passing (positive) or failing (negative) checks."""

    state: TargetState = TargetState.INITIAL
    streak: int = 0

    def after(self, passed: bool, check: HealthCheck) -> TargetHealth:
        """The health after one more check: thresholds count consecutive results, as ALB does."""
        if passed:
            streak = self.streak + 1 if self.streak > 0 else 1
            if self.state != TargetState.HEALTHY and streak >= check.healthy_threshold:
                return TargetHealth(TargetState.HEALTHY, 0)
        else:
            streak = self.streak - 1 if self.streak < 0 else -1
            if self.state != TargetState.UNHEALTHY and -streak >= check.unhealthy_threshold:
                return TargetHealth(TargetState.UNHEALTHY, 0)
        return TargetHealth(self.state, streak)


class TargetPool:
    """The registered targets, their health, and the round robin over those that take traffic."""

    def __init__(self, check: HealthCheck) -> None:
        self.check = check
        self._health: dict[Target, TargetHealth] = {}
        self._next = 0
        self._fail_open = False

    def sync(self, targets: Iterable[Target]) -> None:
        """Follow the registered targets: new ones start ``initial``, gone ones get no new connections."""
        current = list(dict.fromkeys(targets))
        for target in current:
            if target not in self._health:
                log.info("target %s registered (initial)", target)
        for target in self._health:
            if target not in current:
                log.info("target %s deregistered", target)
        self._health = {t: self._health.get(t, TargetHealth()) for t in current}
        self._note_fail_open()

    def record(self, target: Target, passed: bool) -> None:
        """One health check's result for a registered target; a target no longer registered is ignored."""
        before = self._health.get(target)
        if before is None:
            return
        after = before.after(passed, self.check)
        self._health[target] = after
        if after.state != before.state:
            log.info("target %s %s", target, after.state)
        self._note_fail_open()

    def states(self) -> dict[Target, TargetState]:
        """Every registered target's state."""
        return {target: health.state for target, health in self._health.items()}

    def targets(self) -> list[Target]:
        """Every registered target."""
        return list(self._health)

    def routable(self) -> list[Target]:
        """The healthy targets, or every target when none is healthy (ALB fails open)."""
        healthy = [t for t, h in self._health.items() if h.state == TargetState.HEALTHY]
        return healthy or list(self._health)

    def choose(self) -> list[Target]:
        """The targets one new connection tries, in order: round robin first, then the others as fallbacks."""
        routable = self.routable()
        if not routable:
            return []
        start = self._next % len(routable)
        self._next = start + 1
        return routable[start:] + routable[:start]

    def _note_fail_open(self) -> None:
        fail_open = bool(self._health) and all(h.state != TargetState.HEALTHY for h in self._health.values())
        if fail_open and not self._fail_open:
            log.warning("no healthy target: routing to all %d registered targets (fail-open)", len(self._health))
        elif self._fail_open and not fail_open:
            log.info("fail-open over: routing to healthy targets only")
        self._fail_open = fail_open
