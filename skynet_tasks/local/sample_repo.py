"""The sample app's git repository: a bare repository on this machine, and commits pushed to it.

The local clusters, the demo, the cluster tests and the benchmarks all make and change the
sample repository through this module. Everything here is trusted input: the paths and
file contents come from this code base, never from a request.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Mapping
from pathlib import Path

import git

SAMPLE_APP = Path(__file__).parent / "sample_app"
AUTHOR = ("Skynet Demo", "demo@skynet.invalid")
# gitpython's index.add and index.remove change the process's working directory while they run
# (git.index.util.git_working_dir) and resolve paths against it: two threads committing at once
# looked for each other's files (the soak once failed on "no such file: skynet.yml").
_INDEX = threading.Lock()


def _set_author(repo: git.Repo) -> None:
    with repo.config_writer() as config:
        config.set_value("user", "name", AUTHOR[0])
        config.set_value("user", "email", AUTHOR[1])


def create_sample_repo(directory: Path, name: str = "sample-app") -> Path:
    """A bare repository ``directory/repos/<name>.git`` holding the sample app on ``main``; returns its path.

    An existing one is returned as it is.
    """
    bare = directory / "repos" / f"{name}.git"
    if bare.exists():
        return bare
    git.Repo.init(bare, bare=True, initial_branch="main")
    work = directory / "repos" / f".{name}-seed"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(SAMPLE_APP, work, ignore=shutil.ignore_patterns("__pycache__"))
    repo = git.Repo.init(work, initial_branch="main")
    _set_author(repo)
    repo.git.add(A=True)
    repo.index.commit("Sample app: first release")
    repo.create_remote("origin", str(bare)).push("main:main")
    shutil.rmtree(work)
    return bare


def create_layer_branch(bare: Path, layer: str) -> str:
    """A branch named after ``layer`` in the sample repository, starting at ``main``; returns its name.

    Each extra application layer is its own maintenance group and tracks its own
    branch, so a push reaches exactly one group through the webhook's routing table.
    """
    repo = git.Repo(bare)
    if layer not in repo.heads:
        repo.create_head(layer, repo.heads["main"].commit)
    return layer


def branch_tip(origin: str | Path, branch: str = "main") -> str:
    """The sha ``branch`` of the repository at ``origin`` points at."""
    return str(git.Repo(origin).commit(branch).hexsha)


def commit_files(origin: str | Path, work: Path, files: Mapping[str, str | None], message: str,
                 branch: str = "main") -> str:
    """Commit ``files`` on ``branch`` of the repository at ``origin``, push it, and return the new sha.

    ``files`` maps a path in the repository to its new text, or to None to delete it (a path
    that is not there is left alone). ``work`` is the clone the commit is made in: cloned on
    first use, brought up to date with ``origin`` before each commit.
    """
    if not work.exists():
        _set_author(git.Repo.clone_from(str(origin), work, branch=branch))
    repo = git.Repo(work)
    repo.remotes.origin.pull(branch)
    with _INDEX:
        for name, content in files.items():
            path = work / name
            if content is None:
                if path.exists():
                    repo.index.remove([name], working_tree=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
                repo.index.add([name])
        repo.index.commit(message)
    repo.remotes.origin.push(f"{branch}:{branch}")
    return str(repo.head.commit.hexsha)
