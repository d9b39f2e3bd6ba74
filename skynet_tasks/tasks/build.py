"""``build``: a member builds a pushed commit once for its group, then publishes it as its canary.

Two tasks: ``build_request`` is the group's request as a conductor receives it from the
maintenance queue (SQS gives it to one member: "the first member to receive it
builds"), handed to that member's own work worker as ``build``, since a build takes
minutes and the group's maintenance queue must not wait for it.

Trust: the request comes from the maintenance queue and is checked by
``BuildRequest.from_dict``. Its repository and branch are not trusted: anyone who may post
to a maintenance queue could name any code to build (and builds run its steps). The build
clones only what the group's own record in the ledger names; a request that names anything
else is refused, and its rollout fails saying so. A request from the webhook is a push, and
GitHub signs only a push's body, so a captured one can be sent again: its commit is built only
while it is still the branch's tip and, unless the push was forced, not older than the group's
desired release (``builder.push_refusal``); otherwise its rollout fails with the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from skynet_tasks import gitrepo
from skynet_tasks.app import app
from skynet_tasks.builder import BuildFailed, build_release, push_refusal
from skynet_tasks.buildrequest import WEBHOOK_SOURCE, BuildRequest
from skynet_tasks.buildspec import MAX_BUILD_TIMEOUT
from skynet_tasks.config.sync import ConfigDir, git_ssh_environment
from skynet_tasks.context import Context
from skynet_tasks.ledger import Release
from skynet_tasks.messages import BUILD_REQUEST_TASK, BUILD_TASK
from skynet_tasks.redaction import Redactor
from skynet_tasks.registration import keep_registered
from skynet_tasks.states import ReleaseState, RolloutKind, RolloutState
from skynet_tasks.tasks.base import SkynetTask
from skynet_tasks.tasks.publish import publish_release

log = logging.getLogger(__name__)

# A build's claim lapses this many heartbeats after its builder last renewed it (at every
# heartbeat, while it builds): the commit of a builder whose worker died (killed, or its
# instance terminated) is free for another member within minutes, which the build nudge
# then asks for, rather than once the dead build's message returns (the instance queue's
# visibility timeout, 15 minutes; never, if the instance is gone).
LEASE_HEARTBEATS = 3
MIN_LEASE = 15.0
# The build task's limits leave room for the longest build a skynet.yml may ask for, plus its
# checkout and upload. A build that runs past the soft limit fails its rollout, saying so: failing
# only the task left the rollout building, and the nudge built it again, for ever.
BUILD_SOFT_LIMIT = MAX_BUILD_TIMEOUT + 180
BUILD_HARD_LIMIT = BUILD_SOFT_LIMIT + 60
# How long a member waits for another instance's build of the same commit (for another
# rollout of it): within the build task's soft time limit.
BUILD_WAIT = float(MAX_BUILD_TIMEOUT)


# As a conductor step (maintenance.py): a failure is not acknowledged; the queue's redrive policy
# returns the request, then dead-letters it.
@app.task(name=BUILD_REQUEST_TASK, base=SkynetTask, bind=True, time_limit=15, acks_on_failure_or_timeout=False)
def build_request(self: SkynetTask, request: dict[str, Any]) -> None:
    """The group's build request reached this member's conductor: this instance builds."""
    handle_build_request(self.ctx, request)


@app.task(name=BUILD_TASK, base=SkynetTask, bind=True, soft_time_limit=BUILD_SOFT_LIMIT, time_limit=BUILD_HARD_LIMIT)
def build(self: SkynetTask, request: dict[str, Any]) -> None:
    """Build the requested release once for the group and publish it with this instance as its canary."""
    handle_build(self.ctx, request)


def handle_build_request(ctx: Context, request: Any) -> None:
    """Hand the group's build request to this instance's own work worker."""
    req = BuildRequest.from_dict(request)  # a malformed request fails here, before anyone builds
    me = ctx.settings.require_instance().instance_id
    ctx.messenger.to_instance(me, BUILD_TASK, {"request": req.to_dict()})
    log.info("rollout %s: build of %s handed to %s", req.rollout_id, req.sha, me)


def handle_build(ctx: Context, request: Any) -> None:
    """Build the release once for the group and become its canary."""
    req = BuildRequest.from_dict(request)
    me = ctx.settings.require_instance().instance_id
    created = ctx.ledger.create_rollout(req.rollout_id, req.group, req.sha, RolloutKind.CODE, {
        "repo": req.repo, "branch": req.branch, "source": req.source, "requested_at": req.requested_at,
        "forced": req.forced})
    if not created:
        existing = ctx.ledger.rollout_item(req.rollout_id) or {}
        if existing.get("state") != RolloutState.BUILDING:
            log.info("rollout %s: build request seen before (state %s); nothing to do", req.rollout_id,
                     existing.get("state"))
            return
    refusal = unregistered_source(ctx.ledger.group_info(req.group), req)
    if refusal is not None:
        log.warning("rollout %s: %s", req.rollout_id, refusal)
        ctx.ledger.fail_build(req.rollout_id, refusal)
        return
    lease = build_lease(ctx)

    def renew_claim() -> None:  # refused, and harmless, until this instance holds the claim
        ctx.ledger.renew_build(req.group, req.sha, me, lease)

    with keep_registered(ctx, f"build {req.sha[:12]}", also=renew_claim):
        try:
            refusal = stale_push(ctx, req)
            if refusal is not None:
                log.warning("rollout %s: %s (%s at %s)", req.rollout_id, refusal, req.branch, req.sha)
                ctx.ledger.fail_build(req.rollout_id, refusal)
                return
            release = _built_release(ctx, req, me, lease)
        except SoftTimeLimitExceeded:  # outside the build itself (which records its own): the push's check, a wait
            log.warning("rollout %s: the build task's time limit passed before the build", req.rollout_id)
            ctx.ledger.fail_build(req.rollout_id, "build failed: its task's time limit passed before it built")
            return
    if release is None:
        return
    publish_release(ctx, req.rollout_id, release, req.requested_at)


def build_lease(ctx: Context) -> float:
    """Seconds a build claim holds its commit without a renewal (``LEASE_HEARTBEATS`` heartbeats)."""
    return max(LEASE_HEARTBEATS * ctx.settings.heartbeat_interval, MIN_LEASE)


def unregistered_source(group_record: dict[str, Any], req: BuildRequest) -> str | None:
    """Why ``req`` may not be built for its group (it names a repository or branch the group does not
    track), or None when it names exactly the group's own."""
    registered = (group_record.get("repo"), group_record.get("branch"))
    if registered == (req.repo, req.branch):
        return None
    if registered[0] is None:
        return f"refused: group {req.group} has no registered repository to build"
    return (f"refused: the request names {req.repo}@{req.branch}, but group {req.group} builds "
            f"{registered[0]}@{registered[1]}")


def stale_push(ctx: Context, req: BuildRequest) -> str | None:
    """Why a push's commit may not be built (see ``builder.push_refusal``); None for any other request.

    The group's desired release is read right now, not when the push arrived.
    """
    if req.source != WEBHOOK_SOURCE:
        return None
    desired = ctx.ledger.group_info(req.group).get("desired_release")
    try:
        return push_refusal(repo=req.repo, branch=req.branch, sha=req.sha,
                            desired=str(desired) if desired else None, forced=req.forced,
                            work_root=ctx.layout.root / "build",
                            git_env=git_ssh_environment(ConfigDir(ctx.settings.config_dir)))
    except gitrepo.GitError as error:
        return f"build failed: cannot check the push against its repository: {error}"


def _built_release(ctx: Context, req: BuildRequest, me: str, lease: float) -> Release | None:
    """The release of ``req.sha``, building it if nobody has; None when the build failed or is someone else's."""
    deadline = time.monotonic() + BUILD_WAIT
    while True:
        claim = ctx.ledger.claim_build(Release(group=req.group, sha=req.sha, state=ReleaseState.BUILDING,
                                               repo=req.repo, branch=req.branch, builder=me,
                                               started_at=time.time()), lease=lease)
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
                              redactor=Redactor.for_settings(ctx.settings),
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
        "update_timeout": built.update_timeout, "max_parallel": list(built.max_parallel),
        "rollout_policy": built.rollout_policy})
    log.info("release %s built by %s in %.1fs (%d bytes)", req.sha, me, built.duration, built.size)
    return ctx.ledger.release(req.group, req.sha)
