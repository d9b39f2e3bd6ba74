"""Git through gitpython: resolving refs and checking out one commit.

The repository URL comes from the group's configuration (trusted); refs and
shas come from operators and webhooks and are validated before they reach git.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import git

from skynet_tasks import names

log = logging.getLogger(__name__)


# A remote that stops answering fails the git command in about this many seconds, instead of holding the
# worker until its task's hard time limit (over an hour for a build, which renews its claim all the while):
# over HTTP(S), git's own limit on a transfer slower than 1 KB/s (``http.lowSpeedLimit``/``lowSpeedTime``);
# over SSH, the deploy keys' ssh command's connect and keep-alive timeouts (``config.sync.git_ssh_environment``).
STALL_SECONDS = 60


def stall_limits(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` for a git command, with git's limit on a stalled HTTP transfer (what ``env`` says wins)."""
    return {"GIT_HTTP_LOW_SPEED_LIMIT": "1000", "GIT_HTTP_LOW_SPEED_TIME": str(STALL_SECONDS), **(env or {})}


class GitError(Exception):
    """A ref could not be resolved or a commit could not be checked out."""


def check_sha(sha: str) -> str:
    """Return ``sha`` if it is a full 40-character commit id, else raise GitError."""
    if not isinstance(sha, str) or not names.SHA.match(sha):
        raise GitError(f"{sha!r} is not a full 40-character commit sha")
    return sha


@dataclass(frozen=True)
class Commit:
    """A checked-out commit: its sha, author, message and time."""

    sha: str
    author: str
    message: str
    committed_at: float


def resolve_ref(repo_url: str, ref: str, env: dict[str, str] | None = None) -> str:
    """The sha a branch, tag or sha names in the remote repository."""
    if names.SHA.match(ref):
        return ref
    if ref.startswith("-") or any(c in ref for c in " \t\n\0~^:?*[\\") or ".." in ref:
        raise GitError(f"{ref!r} is not a valid ref name")
    try:
        output = str(git.cmd.Git().ls_remote(repo_url, ref, env=stall_limits(env)))
    except git.GitCommandError as error:
        raise GitError(f"cannot list {repo_url}: {error.stderr.strip()}") from error
    candidates: dict[str, str] = {}
    for line in output.splitlines():
        sha, name = line.split("\t", 1)
        candidates[name] = sha
    for name in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"):
        if name in candidates:
            return candidates[name]
    raise GitError(f"ref {ref!r} not found in {repo_url}")


def checkout(repo_url: str, branch: str, sha: str, dest: Path, env: dict[str, str] | None = None) -> Commit:
    """Clone ``repo_url`` into ``dest`` (which must not exist) and check out ``sha`` detached."""
    check_sha(sha)
    try:
        # Closed on leaving: an open Repo keeps ``git cat-file --batch`` processes for the worker's life.
        with git.Repo.clone_from(repo_url, dest, branch=branch or None, no_checkout=True,
                                 env=stall_limits(env)) as repo:
            try:
                repo.git.checkout(sha)
            except git.GitCommandError:
                # The commit is not on the branch's tip history we fetched: fetch it by sha.
                repo.git.fetch("origin", sha, env=stall_limits(env))
                repo.git.checkout(sha)
            # Read inside: a commit's fields are loaded lazily, by a ``git cat-file`` the closed Repo would restart.
            commit = repo.commit(sha)
            return Commit(sha=commit.hexsha, author=str(commit.author), message=str(commit.message).strip(),
                          committed_at=float(commit.committed_date))
    except git.GitCommandError as error:
        raise GitError(f"cannot check out {sha} from {repo_url}: {error.stderr.strip()}") from error


def branch_tip(repo_url: str, branch: str, env: dict[str, str] | None = None) -> str | None:
    """The sha ``refs/heads/<branch>`` points at in the remote repository right now; None if it has no such branch."""
    if branch.startswith("-") or any(c in branch for c in " \t\n\0~^:?*[\\") or ".." in branch:
        raise GitError(f"{branch!r} is not a valid branch name")
    ref = f"refs/heads/{branch}"
    try:
        output = str(git.cmd.Git().ls_remote(repo_url, ref, env=stall_limits(env)))
    except git.GitCommandError as error:
        raise GitError(f"cannot list {repo_url}: {error.stderr.strip()}") from error
    for line in output.splitlines():
        sha, name = line.split("\t", 1)
        if name == ref:  # ls-remote matches patterns by suffix: refs/heads/x/<branch> would match too
            return sha
    return None


def is_ancestor(repo_url: str, branch: str, ancestor: str, descendant: str, dest: Path,
                env: dict[str, str] | None = None) -> bool | None:
    """Whether commit ``ancestor`` is an ancestor of commit ``descendant`` (or the same) in the remote repository.

    None when ``descendant`` cannot be fetched from it (history rewritten since, or never pushed there).
    ``dest`` (which must not exist) receives the commit history only, no file contents where the
    server supports filters; the caller removes it.
    """
    check_sha(ancestor)
    check_sha(descendant)
    try:
        repo = git.Repo.clone_from(repo_url, dest, bare=True, branch=branch or None, single_branch=True,
                                   filter="tree:0", env=stall_limits(env))
    except git.GitCommandError as error:
        raise GitError(f"cannot fetch {repo_url}: {error.stderr.strip()}") from error
    with repo:  # closed on leaving, with the ``git cat-file`` processes it started
        return _is_ancestor(repo, ancestor, descendant, env)


def _is_ancestor(repo: git.Repo, ancestor: str, descendant: str, env: dict[str, str] | None) -> bool | None:
    for sha in (ancestor, descendant):
        if not _has_commit(repo, sha):
            try:
                repo.git.fetch("origin", sha, filter="tree:0", env=stall_limits(env))
            except git.GitCommandError:
                pass  # unreachable from the remote's refs: judged below
            if not _has_commit(repo, sha):
                return None
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
    except git.GitCommandError as error:
        if error.status == 1:  # git's answer "no"; any other status is a failure
            return False
        raise GitError(f"cannot compare {ancestor} with {descendant}: {error.stderr.strip()}") from error
    return True


def _has_commit(repo: git.Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
    except git.GitCommandError:
        return False
    return True
