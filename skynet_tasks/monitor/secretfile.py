"""Secret files (the dashboard's tokens, the webhook's secret): read only if nobody but their owner may open them."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SecretFileError(Exception):
    """A secret file cannot be used: it is unreadable, or others than its owner may read or write it."""


def read_secret_file(path: Path, what: str) -> str:
    """The text of the secret file ``path`` (``what`` names it in errors); refuse one its group or others can open.

    The dashboard's token file and the webhook receiver's secret file both go through here. The mode is
    checked on the descriptor the text is read from, so a file swapped between the check and the read
    cannot slip through.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read()
    except OSError as error:
        raise SecretFileError(f"cannot read {what} {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(f"{what} {path} is readable by others (mode {stat.S_IMODE(mode):04o}): chmod 600 it")
    return text
