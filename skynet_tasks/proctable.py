"""What the kernel's process table says: whether a process runs, and which processes it started."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(stat: Path) -> list[str]:
    # After the command name, which may hold spaces and parentheses: state, parent pid, …
    return stat.read_text().rsplit(")", 1)[1].split()


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (a dead child nobody reaped yet) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child, now reaped
            return False
    except ChildProcessError:
        pass
    try:  # an orphan zombie: the init of a container may never reap it
        return _stat_fields(Path(f"/proc/{pid}/stat"))[0] != "Z"
    except (OSError, IndexError):
        return True


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot), which tells it from a later process given the same
    pid; None if there is no such process."""
    try:
        return int(_stat_fields(Path(f"/proc/{pid}/stat"))[19])
    except (OSError, IndexError, ValueError):
        return None


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc; empty where there is none)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat_fields(stat)
        except (OSError, IndexError):
            continue  # it exited while we looked
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found
