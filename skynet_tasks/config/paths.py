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

SECRET_MODE = 0o600
PLAIN_MODE = 0o644


class ConfigError(ValueError):
    """Configuration that cannot be applied; nothing was changed."""


class FileKind(StrEnum):
    """What a config file is, by its name: which decides its mode and where it is placed."""

    PLAIN = "plain"
    PRIVATE = "private"  # a secret file: readable by the worker's user only
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
    """The file mode a kind gets: 0644 for plain files and TLS certificates, 0600 for everything else."""
    return PLAIN_MODE if kind in (FileKind.PLAIN, FileKind.TLS_CERT) else SECRET_MODE


def is_secret(path: str) -> bool:
    """Whether the file at ``path`` is written readable by its owner only."""
    return mode_of(kind_of(path)) == SECRET_MODE


def placed_at(path: str) -> str:
    """Where a config path lands inside a config generation: keys in ``ssh/``, TLS files in ``tls/``."""
    kind = kind_of(path)
    name = path.rsplit("/", 1)[-1]
    if kind is FileKind.DEPLOY_KEY:
        return f"ssh/{name}"
    if kind in (FileKind.TLS_CERT, FileKind.TLS_KEY):
        return f"tls/{name}"
    return path
