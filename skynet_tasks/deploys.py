"""Starting a deployment: the one path shared by ``skynet deploy`` and the webhook."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from skynet_tasks import gitrepo, names
from skynet_tasks.buildrequest import BuildRequest, new_rollout_id
from skynet_tasks.conductor import Rollout, RolloutReady
from skynet_tasks.events import to_message
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.policy_overrides import NO_OVERRIDES, RolloutOverrides
from skynet_tasks.registry import Registry
from skynet_tasks.states import RolloutKind

log = logging.getLogger(__name__)


class DeployError(Exception):
    """A deployment cannot be requested (unknown group, unresolvable ref…)."""


@dataclass(frozen=True)
class StartedBuild:
    """A requested build: the group, the commit and the rollout it starts."""

    group: str
    release: str
    rollout_id: str


def group_source(ledger: Ledger, group: str) -> tuple[str, str]:
    """The repository URL and branch a group deploys, as its instances registered them."""
    info = ledger.group_info(group)
    if not info.get("repo"):
        raise DeployError(f"group {group} has no repository registered: start one of its instances first")
    return str(info["repo"]), str(info.get("branch") or "main")


def request_build(ledger: Ledger, messenger: Messenger, group: str, repo: str, branch: str, sha: str, source: str,
                  rollout_id: str | None = None, forced: bool = False, overrides: RolloutOverrides = NO_OVERRIDES,
                  ignore_windows: bool = False) -> StartedBuild:
    """Record and enqueue the build of ``sha`` for ``group``; the first member to receive it builds and is the canary.

    The rollout is recorded before the message is sent: a message can be swallowed
    (a worker that dies with a long poll outstanding takes the message with it until
    the visibility timeout), and the members' sweeper re-sends the build of a rollout
    that no instance started (``membership.nudge_stalled_builds``). ``forced``: a push that moved
    its branch back, built although it is older than the running release; the record says so.
    ``overrides``: this rollout's policy instead of its release's ``skynet.yml``'s (checked by
    ``policy_overrides.parse_overrides``; the durations against the release's update timeout when it is
    published), kept in the rollout's record. ``ignore_windows``: the rollout starts outside its maintenance
    windows (``skynet deploy --now``; the caller records who asked in the audit trail).
    """
    names.check_name_part("group", group)
    gitrepo.check_sha(sha)
    request = BuildRequest(group=group, repo=repo, branch=branch, sha=sha, rollout_id=rollout_id or new_rollout_id(),
                           source=source, requested_at=time.time(), forced=forced)
    ledger.create_rollout(request.rollout_id, group, sha, RolloutKind.CODE, {
        "repo": repo, "branch": branch, "source": source, "requested_at": request.requested_at,
        **({"forced": True} if forced else {}), **overrides.record(),
        **({"ignore_windows": True} if ignore_windows else {})})
    messenger.build(group, request.to_dict())
    return StartedBuild(group=group, release=sha, rollout_id=request.rollout_id)


def deploy_ref(ledger: Ledger, messenger: Messenger, group: str, ref: str, source: str = "cli",
               overrides: RolloutOverrides = NO_OVERRIDES, ignore_windows: bool = False) -> StartedBuild:
    """Resolve ``ref`` in the group's repository and request its build, with ``overrides`` instead of its
    skynet.yml's policy (with ``ignore_windows``, outside its maintenance windows too)."""
    repo, branch = group_source(ledger, group)
    try:
        sha = gitrepo.resolve_ref(repo, ref)
    except gitrepo.GitError as error:
        raise DeployError(str(error)) from error
    return request_build(ledger, messenger, group, repo, branch, sha, source, overrides=overrides,
                         ignore_windows=ignore_windows)


@dataclass(frozen=True)
class StartedRollout:
    """A started config or agent rollout of one group of a layer."""

    group: str
    layer: str
    version: str
    rollout_id: str


def start_member_rollouts(ledger: Ledger, registry: Registry, messenger: Messenger, env: str, layer: str,
                          kind: RolloutKind, version: str, update_timeout: float, heartbeat_max_age: float,
                          source: str = "cli") -> list[StartedRollout]:
    """A rollout of ``kind`` to ``version`` for every group of ``env``/``layer`` with live members.

    Nothing to build: the rollout joins the line at once. The first live member (by id)
    is the canary; the others take tickets once it succeeds, exactly as for code.
    """
    members = registry.live(env, layer, heartbeat_max_age)
    started = []
    for group in sorted({m.group for m in members}):
        canary = min(m.instance_id for m in members if m.group == group)
        rollout_id = new_rollout_id()
        now = time.time()
        ledger.create_rollout(rollout_id, group, version, kind, {"source": source, "requested_at": now,
                                                                 "layer": layer})
        rollout = Rollout(id=rollout_id, group=group, release=version, kind=kind, canary=canary,
                          update_timeout=update_timeout, created_at=now)
        body, dedup = to_message(RolloutReady(rollout))
        messenger.maintenance(group, body, dedup)
        started.append(StartedRollout(group, layer, version, rollout_id))
    return started
