"""The bake: an updated instance keeps passing its health check for ``min_healthy_time`` before its ticket is done.

As Nomad's ``min_healthy_time``, checked rather than slept: once the update passed its health check,
the release's own check (``skynet.yml``'s ``health``: its HTTP path, its command, or both) runs
about every second, and the app must still be running, until the bake time is over. The first check
that fails ends the bake: the update fails as a failed health check does (``tasks.update`` returns
the instance to its previous release).

The health command is the repository's code (run as the build user, as the update runs it); the
app's answers are untrusted and only read as a status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http.client import HTTPException

from skynet_tasks import buildspec, commands
from skynet_tasks.httpcheck import http_get
from skynet_tasks.installer import UpdateContext, run_repository_command

# How often the bake checks the app's health.
PROBE_INTERVAL = 1.0
# The longest one check may take: a check slower than this counts as failed (the app hangs).
PROBE_TIMEOUT = 5.0


class TurnedUnhealthy(Exception):
    """The app failed its health check during the bake; ``reason`` says how long after its update."""

    def __init__(self, reason: str, log_text: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_text = log_text


def check_once(ctx: UpdateContext, spec: buildspec.BuildSpec, env: dict[str, str]) -> None:
    """One health check of the current release; raise CommandFailed, OSError or HTTPException if it fails."""
    if spec.service is not None and not ctx.services.running():
        raise commands.CommandFailed("the app is not running")
    health = spec.health
    if health is None:
        return
    if health.http:
        status, _ = http_get(ctx.health_host, ctx.app_port, health.http, timeout=PROBE_TIMEOUT)
        if not 200 <= status < 300:
            raise commands.CommandFailed(f"GET {health.http}: HTTP {status}")
    if health.command:
        # Its output goes to a log of its own: one line a second would bury the update's log.
        run_repository_command(ctx, health.command, cwd=ctx.layout.current, env=env,
                               timeout=min(health.timeout, PROBE_TIMEOUT), log_=commands.CommandLog())


def bake(ctx: UpdateContext, seconds: float, *, interval: float = PROBE_INTERVAL,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str:
    """Check the current release's health every ``interval`` for ``seconds``; return the bake's log.

    Raise TurnedUnhealthy at the first check that fails (the caller returns to the previous release).
    """
    log_ = commands.CommandLog()
    release = ctx.layout.current_release() or ""
    started = clock()
    try:
        spec = buildspec.load_buildspec(ctx.layout.current / "skynet.yml")
    except buildspec.BuildSpecError as error:  # install read it a moment ago: the release changed under us
        raise TurnedUnhealthy(f"bake refused: {error}", log_.text()) from error
    env = commands.base_environment({**ctx.env, "SKYNET_RELEASE": release, "PORT": str(ctx.app_port)})
    what = "its health check" if spec.health is not None \
        else "that the app runs (no health check)" if spec.service is not None else "nothing (no health check, no app)"
    log_.note(f"baking {seconds:g}s: checking {what} every {interval:g}s")
    checks = 0
    while True:
        try:
            check_once(ctx, spec, env)
        except (OSError, HTTPException, commands.CommandFailed) as error:
            after = clock() - started
            log_.note(f"turned unhealthy {after:.1f}s after the update, {checks} checks passed: {error}")
            raise TurnedUnhealthy(f"turned unhealthy {after:.0f}s after its update (during its bake of "
                                  f"{seconds:g}s): {error}", log_.text()) from error
        checks += 1
        baked = clock() - started
        if baked >= seconds:
            log_.note(f"stayed healthy {baked:.1f}s ({checks} checks)")
            return log_.text()
        sleep(min(interval, seconds - baked))
