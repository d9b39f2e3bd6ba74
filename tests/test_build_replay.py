"""The builder's checks of a pushed commit, against a local bare repository, before anything is built.

A push is built only while its commit is the branch's tip (asked with ``git ls-remote``, before
cloning) and, unless it was forced, not an ancestor of the group's desired release (``git
merge-base --is-ancestor`` after fetching the history). ``handle_build`` records a refusal as the
rollout's reason and claims no release; the ledger is moto's server.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import git
import pytest

from skynet_tasks import gitrepo
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.builder import NOT_THE_TIP, OLDER_THAN_RUNNING, push_refusal
from skynet_tasks.buildrequest import WEBHOOK_SOURCE, BadRequest, BuildRequest, new_rollout_id
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.sample_repo import branch_tip, commit_files, create_sample_repo
from skynet_tasks.resources import resolve
from skynet_tasks.states import RolloutKind
from skynet_tasks.tasks.build import handle_build, stale_push

pytestmark = pytest.mark.timeout(120)

GROUP = "local-api"


class History:
    """A sample repository where ``main`` went from ``first`` to ``second``; ``move`` sets it anywhere."""

    def __init__(self, directory: Path) -> None:
        self.bare = create_sample_repo(directory)
        self.first = branch_tip(self.bare)
        self.second = commit_files(self.bare, directory / "work", {"VERSION": "two\n"}, "Release two")
        self.url = str(self.bare)

    def move(self, sha: str) -> None:
        """Force ``main`` to ``sha`` (``git push --force`` of an older commit)."""
        git.Repo(self.bare).git.update_ref("refs/heads/main", sha)


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "git")


def refusal(history: History, work_root: Path, sha: str, desired: str | None, forced: bool = False) -> str | None:
    return push_refusal(repo=history.url, branch="main", sha=sha, desired=desired, forced=forced, work_root=work_root)


def test_the_branch_tip_newer_than_the_running_release_is_built(history, tmp_path):
    assert refusal(history, tmp_path / "build", history.second, desired=history.first) is None
    assert refusal(history, tmp_path / "build", history.second, desired=None) is None  # a group's first release


def test_a_commit_that_is_no_longer_the_tip_is_refused_before_anything_is_cloned(history, tmp_path):
    work_root = tmp_path / "build"

    assert refusal(history, work_root, history.first, desired=None) == NOT_THE_TIP
    assert refusal(history, work_root, history.first, desired=history.second, forced=True) == NOT_THE_TIP
    assert not work_root.exists()  # ls-remote only: nothing was fetched


def test_a_tip_older_than_the_running_release_is_refused_unless_the_push_was_forced(history, tmp_path):
    # Given the group runs the second commit and the branch was moved back to the first
    history.move(history.first)
    work_root = tmp_path / "build"

    assert refusal(history, work_root, history.first, desired=history.second) == OLDER_THAN_RUNNING
    assert refusal(history, work_root, history.first, desired=history.second, forced=True) is None
    assert list(work_root.iterdir()) == []  # the fetched history is removed


def test_a_running_release_the_repository_no_longer_has_does_not_stop_the_tip(history, tmp_path):
    # Rewritten history: what runs cannot be compared with, and the tip is what the branch holds
    assert refusal(history, tmp_path / "build", history.second, desired="f" * 40) is None


def test_a_repository_that_cannot_be_listed_is_an_error_not_a_verdict(tmp_path):
    with pytest.raises(gitrepo.GitError, match="cannot list"):
        push_refusal(repo=str(tmp_path / "missing.git"), branch="main", sha="1" * 40, desired=None, forced=False,
                     work_root=tmp_path / "build")


def test_is_ancestor_answers_none_for_a_commit_the_remote_does_not_have(history, tmp_path):
    assert gitrepo.is_ancestor(history.url, "main", history.first, history.second, tmp_path / "a") is True
    assert gitrepo.is_ancestor(history.url, "main", history.second, history.first, tmp_path / "b") is False
    assert gitrepo.is_ancestor(history.url, "main", history.first, "f" * 40, tmp_path / "c") is None


def test_forced_must_be_a_boolean_in_a_build_request():
    request = {"group": GROUP, "repo": "r", "branch": "main", "sha": "1" * 40, "rollout_id": "r1",
               "source": WEBHOOK_SOURCE}

    assert BuildRequest.from_dict(request).forced is False
    assert BuildRequest.from_dict({**request, "forced": True}).to_dict()["forced"] is True
    with pytest.raises(BadRequest, match="forced"):
        BuildRequest.from_dict({**request, "forced": "true"})


# ---- handle_build: the refusal is the rollout's reason --------------------------------------------------------

@pytest.fixture(scope="module")
def ledger():
    server = MotoServer.start()
    aws = aws_for(server.environment())
    resources = resolve(aws, "local")
    bootstrap_env(aws, resources, [GROUP])
    yield Ledger(aws.dynamodb, resources.state_table)
    server.stop()


def builder_context(ledger: Ledger, root: Path) -> SimpleNamespace:
    """What ``handle_build`` uses up to its refusal: an instance's settings and layout, and the ledger."""
    settings = SimpleNamespace(require_instance=lambda: SimpleNamespace(instance_id="api-1"),
                               config_dir=root / "config", heartbeat_interval=3600.0)
    return SimpleNamespace(settings=settings, ledger=ledger, layout=SimpleNamespace(root=root))


def build_request(history: History, sha: str, source: str = WEBHOOK_SOURCE, forced: bool = False) -> dict:
    return BuildRequest(group=GROUP, repo=history.url, branch="main", sha=sha, rollout_id=new_rollout_id(),
                        source=source, requested_at=time.time(), forced=forced).to_dict()


def running(ledger: Ledger, history: History, desired: str) -> None:
    ledger.ensure_group(GROUP, history.url, "main")
    ledger.db.update_item(TableName=ledger.table, Key={"pk": {"S": f"group#{GROUP}"}, "sk": {"S": "group"}},
                          UpdateExpression="SET desired_release = :d, repo = :r",
                          ExpressionAttributeValues={":d": {"S": desired}, ":r": {"S": history.url}})


@pytest.mark.parametrize(("moved_back", "reason"), [(False, NOT_THE_TIP), (True, OLDER_THAN_RUNNING)],
                         ids=["replayed, not the tip", "tip older than what runs"])
def test_a_refused_push_fails_its_rollout_with_the_reason_and_builds_nothing(ledger, history, tmp_path,
                                                                             moved_back, reason):
    # Given a group running the second commit
    running(ledger, history, history.second)
    if moved_back:
        history.move(history.first)
    request = build_request(history, history.first)

    # When the first commit's push reaches a builder
    handle_build(builder_context(ledger, tmp_path), request)  # type: ignore[arg-type]

    # Then its rollout failed with the reason, and no release of it was claimed or built
    record = ledger.rollout_item(request["rollout_id"])
    assert record["state"] == "build_failed" and record["reason"] == reason
    assert record["forced"] is False
    assert ledger.release(GROUP, history.first) is None


def test_only_pushes_are_checked_an_operators_deploy_of_an_older_commit_is_not(ledger, history, tmp_path):
    running(ledger, history, history.second)
    ctx = builder_context(ledger, tmp_path)

    deploy = BuildRequest.from_dict(build_request(history, history.first, source="cli"))
    push = BuildRequest.from_dict(build_request(history, history.first))
    forced_back = BuildRequest.from_dict(build_request(history, history.first, forced=True))

    assert stale_push(ctx, deploy) is None  # type: ignore[arg-type]
    assert stale_push(ctx, push) == NOT_THE_TIP  # type: ignore[arg-type]
    history.move(history.first)
    assert stale_push(ctx, push) == OLDER_THAN_RUNNING  # type: ignore[arg-type]
    assert stale_push(ctx, forced_back) is None  # type: ignore[arg-type]


def test_a_repository_that_cannot_be_reached_fails_the_rollout_saying_so(ledger, history, tmp_path):
    running(ledger, history, history.second)
    request = {**build_request(history, history.second), "repo": str(tmp_path / "gone.git")}
    ledger.db.update_item(TableName=ledger.table, Key={"pk": {"S": f"group#{GROUP}"}, "sk": {"S": "group"}},
                          UpdateExpression="SET repo = :r", ExpressionAttributeValues={":r": {"S": request["repo"]}})

    handle_build(builder_context(ledger, tmp_path), request)  # type: ignore[arg-type]

    record = ledger.rollout_item(request["rollout_id"])
    assert record["state"] == "build_failed" and "cannot check the push" in record["reason"]
    assert ledger.rollout_item(request["rollout_id"])["kind"] == str(RolloutKind.CODE)
