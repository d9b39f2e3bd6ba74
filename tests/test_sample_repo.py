"""The sample repository the local clusters, the demo and the benchmarks push releases to."""

from __future__ import annotations

import git
import pytest

from skynet_tasks import names
from skynet_tasks.local.sample_repo import branch_tip, commit_files, create_layer_branch, create_sample_repo

pytestmark = pytest.mark.timeout(60)


def test_a_commit_adds_changes_and_deletes_files_and_lands_on_the_branch_of_the_bare_repository(tmp_path):
    bare = create_sample_repo(tmp_path)
    first = branch_tip(bare)

    sha = commit_files(bare, tmp_path / "work", {"VERSION": "two\n", "deep/new.txt": "new\n", "app.py": None,
                                                 "never-there.txt": None}, "Release two")

    assert names.SHA.match(sha) and sha != first
    assert branch_tip(bare) == sha
    tree = git.Repo(bare).commit(sha).tree
    assert tree["VERSION"].data_stream.read() == b"two\n"
    assert tree["deep/new.txt"].data_stream.read() == b"new\n"
    assert "app.py" not in [entry.path for entry in tree.traverse()]
    assert git.Repo(bare).commit(sha).parents[0].hexsha == first


def test_a_clone_catches_up_with_commits_pushed_from_another_clone_before_it_commits(tmp_path):
    bare = create_sample_repo(tmp_path)
    commit_files(bare, tmp_path / "one", {"VERSION": "one\n"}, "From one")
    from_two = commit_files(bare, tmp_path / "two", {"VERSION": "two\n"}, "From two")

    again = commit_files(bare, tmp_path / "one", {"NOTES": "later\n"}, "From one again")

    assert git.Repo(bare).commit(again).parents[0].hexsha == from_two


def test_a_commit_on_a_layer_branch_leaves_main_alone(tmp_path):
    bare = create_sample_repo(tmp_path)
    main = branch_tip(bare)
    branch = create_layer_branch(bare, "web")

    sha = commit_files(bare, tmp_path / "web", {"VERSION": "web\n"}, "Web release", branch=branch)

    assert branch_tip(bare, "web") == sha
    assert branch_tip(bare) == main


def test_making_the_sample_repository_again_keeps_what_was_pushed_to_it(tmp_path):
    bare = create_sample_repo(tmp_path)
    sha = commit_files(bare, tmp_path / "work", {"VERSION": "kept\n"}, "Kept")

    assert create_sample_repo(tmp_path) == bare
    assert branch_tip(bare) == sha
