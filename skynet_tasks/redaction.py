"""Taking the env's secrets out of build and update logs before they are stored.

A build step or a lifecycle hook prints whatever it likes, and its output is stored in the
repo bucket (``logs/``) and shown by the dashboard and ``skynet logs``. Every log goes
through ``store_log``, which replaces each value that looks like one of the env's secrets
with ``[redacted]``: the values of the secret files in the instance's config directory (by
``config.paths.is_secret``: deploy keys, TLS keys, ``secrets/`` and ``*.secret`` files), and
the webhook secret when this process has one.

Values shorter than ``MIN_LENGTH`` are not redacted: a short value (``true``, a port, a user
name) turns up by chance in ordinary output, so redacting it would garble logs and, by which
words vanished, tell the value anyway; and a value that short is guessable, so a log was not
what kept it secret.

Trusted: the config directory (written by the worker's own config sync) and the settings.
Not trusted: the log text, which may hold anything.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.config.paths import is_secret
from skynet_tasks.settings import Settings

log = logging.getLogger(__name__)

MIN_LENGTH = 8
REDACTED = "[redacted]"
MAX_SECRET_FILE = 256 * 1024  # larger files are not secrets read whole into memory
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*[=:]\s*(.*?)\s*$")


@dataclass(frozen=True)
class Redactor:
    """The secret values to take out of a text, longest first (so a longer one is never half-replaced)."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Iterable[str]) -> Redactor:
        """A redactor of ``values``, without those shorter than MIN_LENGTH."""
        kept = {value for value in values if len(value) >= MIN_LENGTH}
        return cls(tuple(sorted(kept, key=lambda value: (-len(value), value))))

    @classmethod
    def for_settings(cls, settings: Settings) -> Redactor:
        """A redactor of this process's secrets as they are now: its config directory's and its webhook secret."""
        values = config_secrets(settings.config_dir)
        if settings.webhook_secret:
            values |= secret_values(settings.webhook_secret)
        if settings.webhook_secret_file:
            values |= _file_secrets(Path(settings.webhook_secret_file))
        return cls.of(values)

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of a secret replaced by ``[redacted]``."""
        if not self.secrets:
            return text
        return re.compile("|".join(re.escape(value) for value in self.secrets)).sub(REDACTED, text)


def secret_values(text: str) -> set[str]:
    """The values a secret file's ``text`` holds: the whole of it, each line, and each ``KEY=value``'s value.

    PEM armour lines (``-----BEGIN …``) are left out: they name a key's kind, not the key.
    """
    values = {text.strip()}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("-----"):
            continue
        values.add(line)
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            values.add(assignment.group(1).strip("'\""))
    return {value for value in values if value}


def config_secrets(config_dir: Path) -> set[str]:
    """The values of every secret file under ``config_dir`` (none if it does not exist)."""
    values: set[str] = set()
    root = config_dir.resolve()
    if not root.is_dir():
        return values
    for folder, folders, files in os.walk(root):  # links inside are not followed
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if not name.startswith(".") and is_secret(relative) and not path.is_symlink():
                values |= _file_secrets(path)
    return values


def _file_secrets(path: Path) -> set[str]:
    try:
        if path.stat().st_size > MAX_SECRET_FILE:
            log.warning("secret file %s is over %d bytes: its values are not redacted from logs", path,
                        MAX_SECRET_FILE)
            return set()
        return secret_values(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as error:
        log.warning("secret file %s unreadable (%s): its values are not redacted from logs", path, error.strerror)
        return set()


def store_log(store: ArtifactStore, key: str, text: str, redactor: Redactor) -> None:
    """Store the log ``text`` as ``key`` in the repo bucket, ``redactor``'s secrets taken out."""
    store.put_text(key, redactor.redact(text))
