"""What each task does, as plain functions of a Context: the I/O shell around the conductor.

``skynet_tasks.tasks`` binds these to Celery; tests and the CLI can call them directly.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from skynet_tasks import __version__, buildspec, gitrepo, names
from skynet_tasks.builder import BuildFailed, build_release, read_manifest
from skynet_tasks.conductor import (
    Decision,
    Dispatch,
    Event,
    Notify,
    Rollout,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
    attention,
)
from skynet_tasks.config.sync import ConfigDir, git_ssh_environment
from skynet_tasks.context import Context
from skynet_tasks.events import from_message, to_message
from skynet_tasks.httpcheck import healthy
from skynet_tasks.installer import UpdateContext, UpdateFailed, install
from skynet_tasks.ledger import Release
from skynet_tasks.ledger.reads import member_view
from skynet_tasks.messages import BUILD_TASK, REGISTRY_CHANGED_TASK, TAKE_TICKET_TASK, UPDATE_TASK
from skynet_tasks.proxy.handshake import wait_for_proxies
from skynet_tasks.registry import Endpoint, LiveMembers
from skynet_tasks.states import Health, ReleaseState, RolloutKind, RolloutState, TicketState
from skynet_tasks.step import decide_and_write_until_settled

log = logging.getLogger(__name__)

# A build claim outlives the build task's hard time limit (840 s) and expires just
# before the instance queue's visibility timeout (900 s) could hand the message back.
BUILD_LEASE = 870.0


class BadRequest(ValueError):
    """A build request that cannot be acted on."""


@dataclass(frozen=True)
class BuildRequest:
    group: str
    repo: str
    branch: str
    sha: str
    rollout_id: str
    source: str
    requested_at: float

    @classmethod
    def from_dict(cls, data: Any) -> BuildRequest:
        if not isinstance(data, dict):
            raise BadRequest("a build request must be an object")
        try:
            group = names.check_name_part("group", data.get("group", ""))
            sha = gitrepo.check_sha(data.get("sha", ""))
        except (ValueError, gitrepo.GitError) as error:
            raise BadRequest(str(error)) from None
        for key in ("repo", "branch", "rollout_id", "source"):
            if not isinstance(data.get(key), str) or not data[key] or len(data[key]) > 500:
                raise BadRequest(f"build request field {key!r} must be a non-empty string")
        return cls(group=group, repo=data["repo"], branch=data["branch"], sha=sha, rollout_id=data["rollout_id"],
                   source=data["source"], requested_at=float(data.get("requested_at") or time.time()))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def new_rollout_id(now: float | None = None) -> str:
    """A rollout id that sorts by creation time and is unique without coordination."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
    return f"r{stamp}-{secrets.token_hex(3)}"


@contextmanager
def keep_registered(ctx: Context, task: str, health: Health | None = None) -> Iterator[None]:
    """Refresh this instance's registration while a long task runs.

    Heartbeats skip a worker that holds a task, so without this a long build or
    update would look like a dead instance to the conductor.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ctx.settings.heartbeat_interval):
            try:
                register_self(ctx, health=health, last_task=task)
            except Exception:  # noqa: BLE001 - a missed refresh must not break the task
                log.exception("could not refresh the registration during %s", task)

    thread = threading.Thread(target=beat, name="keep-registered", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def send_event(ctx: Context, group: str, event: Event) -> None:
    body, dedup = to_message(event)
    ctx.messenger.maintenance(group, body, dedup, lane="tickets" if isinstance(event, TicketTaken) else None)


# ---- build ------------------------------------------------------------------

def handle_build_request(ctx: Context, request: Any) -> None:
    """A member's conductor received the group's build request: its own instance builds.

    SQS gives the message to one conductor, so "the first member to receive it builds".
    The build itself runs on this instance's work worker: a build takes minutes, and
    the group's maintenance queue must not wait for it.
    """
    req = BuildRequest.from_dict(request)  # a malformed request fails here, before anyone builds
    me = ctx.settings.require_instance().instance_id
    ctx.messenger.to_instance(me, BUILD_TASK, {"request": req.to_dict()})
    log.info("rollout %s: build of %s handed to %s", req.rollout_id, req.sha, me)


def handle_build(ctx: Context, request: Any) -> None:
    """Build the release once for the group and become its canary."""
    req = BuildRequest.from_dict(request)
    me = ctx.settings.require_instance().instance_id
    created = ctx.ledger.create_rollout(req.rollout_id, req.group, req.sha, RolloutKind.CODE, {
        "repo": req.repo, "branch": req.branch, "source": req.source, "requested_at": req.requested_at})
    if not created:
        existing = ctx.ledger.rollout_item(req.rollout_id) or {}
        if existing.get("state") != RolloutState.BUILDING:
            log.info("rollout %s: build request seen before (state %s); nothing to do", req.rollout_id,
                     existing.get("state"))
            return
    with keep_registered(ctx, f"build {req.sha[:12]}"):
        release = _built_release(ctx, req, me)
    if release is None:
        return
    ctx.ledger.annotate_rollout(req.rollout_id, {
        "sha256": release.sha256, "size": release.size, "author": release.author, "message": release.message,
        "build_log_key": release.log_key, "builder": release.builder, "build_duration":
            (release.finished_at or time.time()) - release.started_at})
    rollout = Rollout(id=req.rollout_id, group=req.group, release=req.sha, canary=me,
                      update_timeout=float(release.update_timeout or 300.0), created_at=req.requested_at)
    send_event(ctx, req.group, RolloutReady(rollout))
    log.info("rollout %s: release %s ready; %s takes ticket 1 as the canary", req.rollout_id, req.sha, me)


def _built_release(ctx: Context, req: BuildRequest, me: str) -> Release | None:
    """The release of ``req.sha``, building it if nobody has; None when the build failed or is someone else's."""
    deadline = time.monotonic() + BUILD_LEASE
    while True:
        claim = ctx.ledger.claim_build(Release(group=req.group, sha=req.sha, state=ReleaseState.BUILDING,
                                               repo=req.repo, branch=req.branch, builder=me,
                                               started_at=time.time()), lease=BUILD_LEASE)
        if claim is not None:
            return _run_build(ctx, req, me)
        existing = ctx.ledger.release(req.group, req.sha)
        if existing is not None and existing.state is ReleaseState.BUILT:
            log.info("release %s of group %s was built before by %s; reusing it", req.sha, req.group,
                     existing.builder)
            return existing
        if existing is not None and existing.state is ReleaseState.BUILDING and existing.builder == me:
            return _run_build(ctx, req, me)  # our own earlier attempt died: lease is ours to renew
        if time.monotonic() > deadline:
            ctx.ledger.fail_build(req.rollout_id, "timed out waiting for another instance's build")
            return None
        time.sleep(1.0)  # another instance is building this commit right now


def _run_build(ctx: Context, req: BuildRequest, me: str) -> Release | None:
    try:
        built = build_release(store=ctx.store, work_root=ctx.layout.root / "build", repo=req.repo,
                              branch=req.branch, sha=req.sha, builder=me,
                              git_env=git_ssh_environment(ConfigDir(ctx.settings.config_dir)))
    except BuildFailed as failure:
        ctx.ledger.finish_build(req.group, req.sha, me, ReleaseState.FAILED,
                                {"error": failure.reason, "log_key": failure.log_key})
        ctx.ledger.annotate_rollout(req.rollout_id, {"build_log_key": failure.log_key, "builder": me})
        ctx.ledger.fail_build(req.rollout_id, f"build failed: {failure.reason}")
        log.warning("rollout %s: build of %s failed: %s (log %s)", req.rollout_id, req.sha, failure.reason,
                    failure.log_key)
        return None
    ctx.ledger.finish_build(req.group, req.sha, me, ReleaseState.BUILT, {
        "artifact_key": built.artifact_key, "manifest_key": built.manifest_key, "log_key": built.log_key,
        "sha256": built.sha256, "size": built.size, "author": built.author, "message": built.message,
        "update_timeout": built.update_timeout})
    log.info("release %s built by %s in %.1fs (%d bytes)", req.sha, me, built.duration, built.size)
    return ctx.ledger.release(req.group, req.sha)


# ---- conductor --------------------------------------------------------------

def handle_maintenance(ctx: Context, group: str, message: Any, now: float | None = None) -> Decision | None:
    """One conductor step: decide on the event against fresh state, write it conditionally, then act."""
    event = from_message(message)
    # Read once per step (heartbeats are minutes apart; a retry needs none fresher), and only if asked.
    live = LiveMembers(ctx.registry, ctx.settings.env, group, ctx.settings.heartbeat_max_age)
    decision = decide_and_write_until_settled(ctx.ledger, group, event, live, now)
    perform(ctx, decision)
    return decision


def perform(ctx: Context, decision: Decision) -> None:
    # The turn first: an instance waits on its update message, while ticket notifications can trail.
    for action in sorted(decision.actions, key=lambda action: not isinstance(action, Dispatch)):
        if isinstance(action, Dispatch):
            ctx.messenger.to_instance(action.instance, UPDATE_TASK,
                                      {"rollout_id": action.rollout_id, "ticket": action.ticket})
            log.info("rollout %s: ticket %d's number came up on %s", action.rollout_id, action.ticket,
                     action.instance)
        elif isinstance(action, Notify):
            for instance in action.instances:
                ctx.messenger.to_instance(instance, TAKE_TICKET_TASK, {"rollout_id": action.rollout_id})
            log.info("rollout %s: %d members told to take a ticket", action.rollout_id, len(action.instances))


# ---- members ----------------------------------------------------------------

def handle_take_ticket(ctx: Context, rollout_id: str) -> None:
    """Post this instance's ticket in the group's line."""
    me = ctx.settings.require_instance().instance_id
    send_event(ctx, ctx.settings.group, TicketTaken(rollout_id, me))
    log.info("rollout %s: %s took a ticket", rollout_id, me)


def handle_update(ctx: Context, rollout_id: str, ticket: int) -> None:
    """Update this instance for ``ticket`` if it is still this instance's turn, then report back."""
    me = ctx.settings.require_instance().instance_id
    attempt = ctx.ledger.acknowledge_ticket(rollout_id, ticket, me)
    if attempt is None:
        log.info("rollout %s: ticket %d is not updating on %s any more (or was reported); ignoring the update"
                 " message", rollout_id, ticket, me)
        return
    rollout = ctx.ledger.rollout_item(rollout_id) or {}
    kind = RolloutKind(rollout.get("kind", RolloutKind.CODE))
    ok, error, log_text = True, None, ""
    try:
        if register_self(ctx, health=Health.DRAINING, last_task=f"update {rollout_id}#{ticket}"):
            wait_for_proxies(ctx, since=time.time())  # no proxy routes here any more: the app may stop
        update_ctx = update_context(ctx, {"SKYNET_ROLLOUT": rollout_id, "SKYNET_TICKET": str(ticket)})
        with keep_registered(ctx, f"update {rollout_id}#{ticket}", Health.DRAINING):
            log_text = UPDATERS[kind](ctx, update_ctx, rollout)
    except UpdateFailed as failure:
        ok, error, log_text = False, failure.reason, failure.log_text
    except Exception as unexpected:  # noqa: BLE001 - any failure must be reported, or the line stalls
        log.exception("rollout %s: update of ticket %d crashed", rollout_id, ticket)
        ok, error = False, f"update crashed: {unexpected!r}"
    annotations: dict[str, Any] = {"reported_attempt": attempt}
    log_key = f"logs/updates/{rollout_id}/{ticket:06d}-{me}.log"
    try:
        ctx.store.put_text(log_key, log_text or (error or "") + "\n")
        annotations["log_key"] = log_key
    except Exception:  # noqa: BLE001 - the report matters more than its log
        log.exception("rollout %s: could not store the log of ticket %d", rollout_id, ticket)
    try:
        # Marked reported before the report goes out, so that a duplicate update message can no longer run it.
        ctx.ledger.annotate_ticket(rollout_id, ticket, {**annotations, "reported_at": time.time()})
    except Exception:  # noqa: BLE001 - the conductor ignores a second report anyway; the first must go out
        log.exception("rollout %s: could not mark ticket %d reported", rollout_id, ticket)
    # Back in the registry before the report: the next instance's drain waits for the proxies to
    # read the registry after its own write, so they route here again before it stops its app.
    # Telling the proxies can wait until the report is out: that drain tells them too.
    changed = False
    try:
        changed = register_self(ctx, last_task=f"update {rollout_id}#{ticket}",
                                last_outcome="ok" if ok else f"failed: {error}", notify=False)
    except Exception:  # noqa: BLE001 - the report must go out; the heartbeat registers again
        log.exception("rollout %s: could not re-register after ticket %d", rollout_id, ticket)
    send_event(ctx, ctx.settings.group, UpdateReported(rollout_id, ticket, me, ok, error))
    if changed:
        try:
            notify_proxies(ctx)
        except Exception:  # noqa: BLE001 - the proxies' own poll catches up (SKYNET_RP_POLL)
            log.exception("rollout %s: could not tell the proxies after ticket %d", rollout_id, ticket)
    log.info("rollout %s: ticket %d on %s %s%s", rollout_id, ticket, me, "succeeded" if ok else "failed",
             f": {error}" if error else "")


def install_release(ctx: Context, update_ctx: UpdateContext, rollout: dict[str, Any]) -> str:
    """A code ticket: install the rollout's built release (see ``installer.install``)."""
    sha = rollout.get("release", "")
    release = ctx.ledger.release(ctx.settings.group, sha)
    if release is None or release.state is not ReleaseState.BUILT or not release.manifest_key:
        raise UpdateFailed(f"release {sha} is not built", "")
    return install(update_ctx, read_manifest(ctx.store, release.manifest_key))


def apply_config(ctx: Context, update_ctx: UpdateContext, rollout: dict[str, Any]) -> str:
    """A config-update ticket: sync the config, restart the app on it, health-check."""
    from skynet_tasks.config.apply import apply_config_update

    return apply_config_update(ctx, update_ctx)


def update_agent(ctx: Context, update_ctx: UpdateContext, rollout: dict[str, Any]) -> str:
    """A skynet-update ticket: install the agent's new version; the worker restarts once it reported."""
    from skynet_tasks.agent import install_agent

    return install_agent(ctx, rollout)


UPDATERS = {RolloutKind.CODE: install_release, RolloutKind.CONFIG: apply_config, RolloutKind.AGENT: update_agent}


def update_context(ctx: Context, extra_env: dict[str, str]) -> UpdateContext:
    """What the installer needs to put a release on this instance; ``extra_env`` reaches its hooks."""
    s = ctx.settings
    return UpdateContext(
        layout=ctx.layout, store=ctx.store, services=ctx.services(), app_port=s.app_port,
        health_host=s.address, keep_releases=s.keep_releases,
        env={"SKYNET_INSTANCE_ID": s.instance_id, "SKYNET_ENV": s.env, "SKYNET_LAYER": s.layer,
             "SKYNET_ADDRESS": s.address,
             "SKYNET_CONFIG_DIR": str(s.config_dir), "SKYNET_ROOT": str(s.root), **extra_env})


def probe_health(ctx: Context) -> Health:
    """This instance's health as the proxy should see it: its app answers its health check."""
    layout = ctx.layout
    if layout.drain_flag.exists():
        return Health.DRAINING
    if ctx.settings.layer == "rp":
        from skynet_tasks.proxy.runtime import proxy_health

        return proxy_health(ctx)
    if layout.current_release() is None:
        return Health.EMPTY
    try:
        spec = buildspec.load_buildspec(layout.current / "skynet.yml")
    except buildspec.BuildSpecError:
        return Health.UNHEALTHY
    if spec.health and spec.health.http:
        answers = healthy(ctx.settings.address, ctx.settings.app_port, spec.health.http)
        return Health.HEALTHY if answers else Health.UNHEALTHY
    return Health.HEALTHY if ctx.services().running() or not spec.service else Health.UNHEALTHY


def register_self(ctx: Context, health: Health | None = None, last_task: str = "", last_outcome: str = "",
                  notify: bool = True) -> bool:
    """Refresh this instance's registry entry; True when what the proxies route to changed.

    Then the proxies are told at once, unless ``notify`` is False (the caller tells them).
    """
    s = ctx.settings
    endpoint = Endpoint(
        instance_id=s.instance_id, group=s.group, address=s.address, port=s.app_port,
        release=ctx.layout.current_release() or "", health=str(health or probe_health(ctx)),
        heartbeat=time.time(), agent_version=__version__,
        config_version=ConfigDir(s.config_dir).current_version() or "", last_task=last_task, last_outcome=last_outcome,
        synced_at=_proxy_synced_at(ctx))
    ctx.registry.register(s.env, s.layer, endpoint)
    # Tasks run in the worker's pool process and heartbeats in its main one: the last
    # routing-relevant state is kept in a file, so both see the same.
    routed = f"{endpoint.address}:{endpoint.port} {endpoint.health} {endpoint.release}"
    marker = ctx.layout.run_dir / "registered"
    try:
        previous = marker.read_text()
    except OSError:
        previous = ""
    if routed != previous and s.layer != "rp":
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(routed)
        if notify:
            notify_proxies(ctx)
        return True
    return False


def _proxy_synced_at(ctx: Context) -> float:
    if ctx.settings.layer != "rp":
        return 0.0
    from skynet_tasks.proxy.runtime import proxy_synced_at

    return proxy_synced_at(ctx)


def notify_proxies(ctx: Context) -> None:
    """Ask every live proxy of the env to sync now (their slow poll would catch up anyway)."""
    s = ctx.settings
    for proxy in ctx.registry.live(s.env, "rp", s.heartbeat_max_age):
        ctx.messenger.to_instance(proxy.instance_id, REGISTRY_CHANGED_TASK, {}, expires=60)


def handle_re_register(ctx: Context, reason: str = "heartbeat") -> None:
    """Heartbeat: register, take a missed ticket, and report a stalled line to the conductor."""
    s = ctx.settings.require_instance()
    register_self(ctx, last_task=f"re_register ({reason})")
    group = member_view(ctx.ledger, s.group, s.instance_id)
    now = time.time()
    report_not_updating(ctx, group.line)
    mine = ctx.layout.current_release()
    newest = group.line[-1] if group.line else None
    if newest is not None and newest.id == group.desired_rollout and newest.published \
            and newest.state in (RolloutState.RUNNING, RolloutState.PAUSED) \
            and newest.ticket_of(s.instance_id) is None and mine != newest.release:
        log.info("rollout %s: %s missed its notification; taking a ticket now", newest.id, s.instance_id)
        send_event(ctx, s.group, TicketTaken(newest.id, s.instance_id))
    if attention(group, now):
        body, _ = to_message(Tick())
        # One tick per group per heartbeat interval, however many members notice.
        ctx.messenger.maintenance(s.group, body, f"tick:{int(now // max(s.heartbeat_interval, 1))}")


def report_not_updating(ctx: Context, line: tuple[Rollout, ...]) -> None:
    """Release the group's line from a hold on this instance's overdue ticket.

    A heartbeat runs only while the work worker holds no task, and nothing starts while it
    runs (``workers.launch.heartbeat_step``); a boot runs before the worker consumes. Either
    way, whatever update of this instance passed its deadline is not running any more, so
    the line need not wait for the task's time limit.
    """
    me = ctx.settings.require_instance().instance_id
    for rollout in line:
        ticket = rollout.ticket_of(me)
        if ticket is not None and rollout.held_by == ticket.number and ticket.state is not TicketState.UPDATING:
            log.info("rollout %s: ticket %d passed its deadline and %s is not updating; telling the conductor",
                     rollout.id, ticket.number, me)
            send_event(ctx, ctx.settings.group, UpdateReported(rollout.id, ticket.number, me, False,
                                                               "the instance is not updating (late report)"))


def handle_drain(ctx: Context, drain: bool) -> None:
    """Operator drain: report this instance draining (the proxy drops it) until undone."""
    flag = ctx.layout.drain_flag
    if drain:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.touch()
    else:
        flag.unlink(missing_ok=True)
    register_self(ctx, last_task="drain" if drain else "undrain")
    log.info("instance %s %s", ctx.settings.instance_id, "draining" if drain else "back in service")
