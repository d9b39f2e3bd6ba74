"""Symlinks that name what is current: the release an app runs, the config generation, the agent version.

Readers follow the link, so switching is one ``rename(2)`` of a new link over the old: a reader
sees the old target or the new one, never a missing or half-made link.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def link_target_name(link: Path) -> str | None:
    """The last part of what ``link`` points to (a release sha, a version), or None if it is no link."""
    try:
        return os.readlink(link).rsplit("/", 1)[-1]
    except OSError:
        return None


def switch_link(link: Path, target: Path | str) -> None:
    """Point ``link`` at ``target`` (relative to the link's folder) atomically: a new link renamed over it."""
    temp = link.parent / f".{link.name}.link-{secrets.token_hex(3)}"
    os.symlink(target, temp)
    try:
        os.replace(temp, link)
    except OSError:
        temp.unlink(missing_ok=True)
        raise
