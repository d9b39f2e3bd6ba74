"""A git remote that stops answering fails the build's git commands in about ``gitrepo.STALL_SECONDS``, over
HTTP and over SSH with the deploy keys' command, instead of holding the worker until its task's hard limit.

The remotes are local sockets that accept a connection and never answer (a stalled server, a half-open
network path); git and ssh are the real ones. The limit is shortened to 2 s here (60 s in service).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from skynet_tasks import gitrepo
from skynet_tasks.config.sync import ConfigDir, git_ssh_environment

pytestmark = pytest.mark.timeout(60)  # a git command that hung would end here, failing the test

SHA = "a" * 40


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts every connection and never sends a byte."""
    held: list[socket.socket] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)

        def accept() -> None:
            while True:
                try:
                    held.append(server.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        yield server.getsockname()[1]
    for connection in held:
        connection.close()


@pytest.fixture(autouse=True)
def short_stall_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitrepo, "STALL_SECONDS", 2)


def test_an_http_remote_that_never_answers_fails_the_push_check_and_the_checkout(silent_server, tmp_path):
    url = f"http://127.0.0.1:{silent_server}/app.git"

    with pytest.raises(gitrepo.GitError, match="Operation too slow"):
        gitrepo.branch_tip(url, "main")
    with pytest.raises(gitrepo.GitError, match="Operation too slow"):
        gitrepo.checkout(url, "main", SHA, tmp_path / "checkout")


def test_an_ssh_remote_that_never_answers_fails_the_checkout_with_the_deploy_keys_command(silent_server, tmp_path):
    # Given an instance's config with a deploy key (any file: the server never gets as far as asking for it)
    config = ConfigDir(tmp_path / "config")
    generation = tmp_path / "generation"
    (generation / "ssh").mkdir(parents=True)
    (generation / "ssh" / "deploy.pem").write_text("not a key\n")
    config.path.parent.mkdir(parents=True, exist_ok=True)
    config.path.symlink_to(generation)
    environment = git_ssh_environment(config)
    assert "ConnectTimeout=1" in environment["GIT_SSH_COMMAND"]

    # When the build checks out from a server that accepts the connection and never sends its banner
    with pytest.raises(gitrepo.GitError, match="timed out"):
        gitrepo.checkout(f"ssh://git@127.0.0.1:{silent_server}/app.git", "main", SHA, tmp_path / "checkout",
                         env=environment)


def test_the_caller_s_own_limits_win_over_the_defaults():
    assert gitrepo.stall_limits({"GIT_HTTP_LOW_SPEED_TIME": "5"})["GIT_HTTP_LOW_SPEED_TIME"] == "5"
    assert gitrepo.stall_limits() == {"GIT_HTTP_LOW_SPEED_LIMIT": "1000", "GIT_HTTP_LOW_SPEED_TIME": "2"}


def test_a_remote_on_disk_is_not_slowed_by_the_limits(tmp_path: Path):
    import git

    origin = git.Repo.init(tmp_path / "origin", initial_branch="main")
    (tmp_path / "origin" / "VERSION").write_text("one\n")
    origin.index.add(["VERSION"])
    sha = origin.index.commit("one").hexsha

    assert gitrepo.branch_tip(str(tmp_path / "origin"), "main") == sha
    assert gitrepo.checkout(str(tmp_path / "origin"), "main", sha, tmp_path / "checkout").sha == sha
