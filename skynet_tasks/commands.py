"""Running a repository's commands (build steps, hooks, health checks) with a time limit.

Commands come from the repository's ``skynet.yml`` and run with the repository
owner's trust, like a Makefile: but never through a shell, so nothing from a
webhook, a registry or a config key can be spliced into them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from skynet_tasks.settings import child_environment


class CommandFailed(Exception):
    """A command exited non-zero, could not start, or ran out of time."""


@dataclass
class CommandLog:
    """The combined output of the commands of one build or update, kept for the operator."""

    lines: list[str]

    def __init__(self) -> None:
        self.lines = []

    def note(self, text: str) -> None:
        """Add a line to the log, stamped with the time of day."""
        self.lines.append(f"[{time.strftime('%H:%M:%S')}] {text}")

    def text(self) -> str:
        """The whole log as text."""
        return "\n".join(self.lines) + "\n"


def run(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float, log: CommandLog) -> None:
    """Run one command; raise CommandFailed on a non-zero exit or when ``timeout`` passes."""
    log.note("$ " + " ".join(argv))
    try:
        process = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as error:
        log.note(f"cannot start: {error}")
        raise CommandFailed(f"{argv[0]}: cannot start: {error.strerror}") from error
    try:
        output, _ = process.communicate(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        # Kill the whole process group: a build step's children must not outlive it.
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        log.lines.append(output.decode("utf-8", "replace").rstrip())
        log.note(f"timed out after {timeout:.0f}s")
        raise CommandFailed(f"{' '.join(argv)}: timed out after {timeout:.0f}s") from None
    except BaseException:  # interrupted (the task's time limit): the step's children must not outlive it either
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    log.lines.append(output.decode("utf-8", "replace").rstrip())
    if process.returncode != 0:
        log.note(f"exit status {process.returncode}")
        raise CommandFailed(f"{' '.join(argv)}: exit status {process.returncode}")


def base_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment a repository command sees: a small, predictable one, not the worker's."""
    env = child_environment(keep=("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "GIT_SSH_COMMAND"))
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra)
    return env
