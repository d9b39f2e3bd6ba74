"""Which config paths are allowed, and what kind of file each one is.

A config path becomes a file under the instance's config directory, so it is
checked before anything is written: relative, segments of ``[A-Za-z0-9._-]``
only, no ``.``/``..`` segment, no hidden segment, bounded length and depth.
"""

from __future__ import annotations

import re
from enum import StrEnum

SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
MAX_DEPTH = 8
MAX_PATH = 512

# Who may read a synced config file. The worker writes every file; the folder it writes into is
# setgid to the app's group (workers/accounts.py), so a file's group is the app's (www-data).
WORKER_ONLY_MODE = 0o600  # what only the worker uses: deploy keys (git's SSH), TLS keys (the proxy's nginx)
APP_READABLE_MODE = 0o640  # what the app reads: its settings, certificates and its own secrets; others nothing


class ConfigError(ValueError):
    """Configuration that cannot be applied; nothing was changed."""


class FileKind(StrEnum):
    """What a config file is, by its name: which decides its mode and where it is placed."""

    PLAIN = "plain"
    PRIVATE = "private"  # the app's secret (a database password): the app reads it, the logs never show it
    DEPLOY_KEY = "deploy-key"  # *.pem: an SSH key git uses for the repository
    TLS_CERT = "tls-cert"
    TLS_KEY = "tls-key"


def check_config_path(path: str, source: str = "") -> str:
    """``path`` if it is a safe relative config path; ConfigError naming ``source`` otherwise."""
    where = f" (from {source})" if source else ""
    if not isinstance(path, str) or not path:
        raise ConfigError(f"empty config path{where}")
    if len(path) > MAX_PATH:
        raise ConfigError(f"config path longer than {MAX_PATH} characters{where}")
    if path.startswith("/"):
        raise ConfigError(f"config path {path!r} is absolute{where}")
    segments = path.split("/")
    if len(segments) > MAX_DEPTH:
        raise ConfigError(f"config path {path!r} is deeper than {MAX_DEPTH} folders{where}")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ConfigError(f"config path {path!r} has an empty, '.' or '..' segment{where}")
        if not SEGMENT.fullmatch(segment) or segment.endswith("."):
            raise ConfigError(f"config path {path!r}: {segment!r} is not made of letters, digits, '.', '_', '-' "
                              f"(and may not start with '.' or '-'){where}")
    return path


def kind_of(path: str) -> FileKind:
    """The kind of the config file at ``path``, by its name.

    ``*.pem``, ``*.crt`` and ``*.key`` by their suffix; a secret if it is in a ``secrets`` folder or
    ends in ``.secret``; else plain.
    """
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".pem"):
        return FileKind.DEPLOY_KEY
    if name.endswith(".crt"):
        return FileKind.TLS_CERT
    if name.endswith(".key"):
        return FileKind.TLS_KEY
    if "secrets" in path.split("/")[:-1] or name.endswith(".secret"):
        return FileKind.PRIVATE
    return FileKind.PLAIN


def mode_of(kind: FileKind) -> int:
    """The file mode a kind gets: 0600 (the worker's alone) for deploy keys and TLS keys, 0640 (the app's
    group reads it) for everything else.

    Deploy keys are used by git in the worker's builds, and TLS keys by the proxy's nginx, which runs as
    the worker: the app needs neither, and a deploy key in a remote-code bug's hands is the repository's
    history. Settings, certificates and the app's own secrets (``secrets/``, ``*.secret``) are what
    an app reads from its config (docs/operations.md, "Layered configuration").
    """
    return WORKER_ONLY_MODE if kind in (FileKind.DEPLOY_KEY, FileKind.TLS_KEY) else APP_READABLE_MODE


def is_secret(path: str) -> bool:
    """Whether the content of the file at ``path`` is a secret: kept out of stored logs, and refused by
    ``config push`` when the local copy is readable by others than its owner."""
    return kind_of(path) in (FileKind.PRIVATE, FileKind.DEPLOY_KEY, FileKind.TLS_KEY)


def placed_at(path: str) -> str:
    """Where a config path lands inside a config generation: keys in ``ssh/``, TLS files in ``tls/``."""
    kind = kind_of(path)
    name = path.rsplit("/", 1)[-1]
    if kind is FileKind.DEPLOY_KEY:
        return f"ssh/{name}"
    if kind in (FileKind.TLS_CERT, FileKind.TLS_KEY):
        return f"tls/{name}"
    return path
