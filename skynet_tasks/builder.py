"""Building a release once: check out the commit, run its build steps, pack and upload the artifact.

The checkout happens in a clean work folder that is removed afterwards; the
build log is uploaded whatever the outcome, so a failed build can be read.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from skynet_tasks import artifacts, build_user, buildspec, commands, gitrepo, names
from skynet_tasks.artifact_store import ArtifactStore, release_prefix
from skynet_tasks.redaction import Redactor, store_log

log = logging.getLogger(__name__)


class BuildFailed(Exception):
    """The build could not produce an artifact; ``log_key`` points at its log."""

    def __init__(self, reason: str, log_key: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_key = log_key


@dataclass(frozen=True)
class BuiltRelease:
    """A release the build produced: its artifact, manifest and log keys, digest, size and commit."""

    sha: str
    artifact_key: str
    manifest_key: str
    log_key: str
    sha256: str
    size: int
    author: str
    message: str
    update_timeout: float
    duration: float
    max_parallel: tuple[str, ...] = ("1",)
    rollout_policy: dict[str, Any] | None = None  # its skynet.yml's whole rollout policy (``RolloutPolicy.record``)


def build_release(*, store: ArtifactStore, work_root: Path, repo: str, branch: str, sha: str, builder: str,
                  redactor: Redactor, git_env: dict[str, str] | None = None) -> BuiltRelease:
    """Build ``sha`` of ``repo`` and upload it; raise BuildFailed (with the log uploaded) on any failure.

    The log is stored with ``redactor``'s secrets taken out.
    """
    started = time.time()
    prefix = release_prefix(repo, branch, sha)
    log_key = f"logs/builds/{prefix}/{int(started)}-{builder}.log"
    build_log = commands.CommandLog()
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"build-{sha[:12]}-", dir=work_root))
    try:
        source = work / "source"
        build_log.note(f"checking out {sha} of {repo} ({branch})")
        # The worker's log follows the build's phases (not its commands, which the redacted build log keeps),
        # so that a build that hangs shows where.
        log.info("build of %s: checking out", sha[:12])
        commit = gitrepo.checkout(repo, branch, sha, source, env=git_env)
        build_log.note(f"commit by {commit.author}: {commit.message.splitlines()[0] if commit.message else ''}")
        spec = buildspec.load_buildspec(source / "skynet.yml")
        env = commands.base_environment({"SKYNET_SHA": sha, "SKYNET_BRANCH": branch, "HOME": str(work)})
        deadline = time.monotonic() + spec.build_timeout
        if build_user.uses_build_user(work_root):  # the steps run as the build user, in a tree it may change
            build_user.share_with_build_user(work)
        for number, step in enumerate(spec.build, start=1):
            log.info("build of %s: step %d of %d", sha[:12], number, len(spec.build))
            build_user.run_step(step, cwd=source, env=env, timeout=deadline - time.monotonic(), log=build_log,
                              work_root=work_root)
        tarball = work / "artifact.tar.gz"
        files = artifacts.pack(source, tarball, exclude=spec.artifact_exclude)
        digest = artifacts.sha256_file(tarball)
        size = tarball.stat().st_size
        artifact_key, manifest_key = f"{prefix}/artifact.tar.gz", f"{prefix}/manifest.json"
        manifest = artifacts.Manifest(repo=repo, branch=branch, sha=sha, sha256=digest, size=size,
                                      files=files, builder=builder, built_at=time.time(), build_log_key=log_key,
                                      artifact_key=artifact_key)
        log.info("build of %s: uploading its artifact (%d bytes)", sha[:12], size)
        store.upload_file(tarball, artifact_key, "application/gzip")
        store.put_text(manifest_key, manifest.to_json(), "application/json")
        build_log.note(f"artifact {artifact_key}: {size} bytes, sha256 {digest}, {len(files)} files")
    except (gitrepo.GitError, buildspec.BuildSpecError, commands.CommandFailed, artifacts.ArtifactError,
            OSError, SoftTimeLimitExceeded) as error:
        if isinstance(error, SoftTimeLimitExceeded):  # (its own text is empty)
            error = TimeoutError("the build ran past its task's time limit (checkout, steps and upload together)")
        build_log.note(f"build failed: {error}")
        store_log(store, log_key, build_log.text(), redactor)
        raise BuildFailed(str(error), log_key) from error
    finally:
        shutil.rmtree(work, ignore_errors=True)
    store_log(store, log_key, build_log.text(), redactor)
    return BuiltRelease(sha=sha, artifact_key=artifact_key, manifest_key=manifest_key, log_key=log_key,
                        sha256=digest, size=size, author=commit.author, message=commit.message,
                        update_timeout=spec.update_timeout, duration=time.time() - started,
                        max_parallel=spec.rollout.max_parallel, rollout_policy=spec.rollout.record())


def read_manifest(store: ArtifactStore, key: str) -> artifacts.Manifest:
    """The release manifest stored at ``key``."""
    return artifacts.Manifest.from_json(store.get_text(key))



# The reasons a pushed commit is not built, as the rollout's record states them.
NOT_THE_TIP = "refused: not the branch tip"
OLDER_THAN_RUNNING = "refused: older than the running release"


def push_refusal(*, repo: str, branch: str, sha: str, desired: str | None, forced: bool, work_root: Path,
                 git_env: dict[str, str] | None = None) -> str | None:
    """Why the pushed commit ``sha`` must not be built, or None when it may be.

    Refused when the branch no longer points at it (a replayed or overtaken push: asked of the
    remote before anything is cloned), or when it is an ancestor of ``desired``, the group's
    desired release (a push older than what runs), unless the push was ``forced`` (the branch
    was moved back on purpose). A desired release the remote no longer has cannot be compared:
    the tip is built. GitError when the remote cannot be asked.
    """
    if gitrepo.branch_tip(repo, branch, env=git_env) != sha:
        return NOT_THE_TIP
    if forced or desired is None or desired == sha or not names.SHA.match(desired):
        return None
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"history-{sha[:12]}-", dir=work_root))
    try:
        older = gitrepo.is_ancestor(repo, branch, sha, desired, work / "history", env=git_env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return OLDER_THAN_RUNNING if older else None
