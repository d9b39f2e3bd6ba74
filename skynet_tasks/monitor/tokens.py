"""The dashboard's named tokens: a token file of ``NAME TOKEN [read]`` lines, re-read when it changes.

Each token has a name, which is what the audit trail records for an action taken with it, and is
revoked by removing its line (``skynet monitor token revoke NAME``): the dashboard looks at the
file's identity (inode, size, modification time) on every check and re-reads it when it changed,
so a revoked token is refused from the next request on, without a restart.

A file of one line holding a token alone (the format before names) is that token, named
``token`` (so the audit trail goes on saying ``dashboard:token`` for it). ``read`` after a token
makes it read-only; every token of a read-only token file (``--read-token-file``) is read-only.

Trust: the file is configuration, written by the operator (mode 0600, checked); it is still
validated, because names end up in the audit trail and in pages: a name is 1-40 characters of
letters, digits and ``._@-``. A file that has become unusable (a bad line, readable by others)
refuses every token until fixed, rather than keep honouring ones it may have meant to revoke.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from skynet_tasks.monitor.secretfile import SecretFileError, read_secret_file

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,39}$")
MIN_TOKEN_LENGTH = 16
LEGACY_NAME = "token"  # the name of a lone token, in a file of the format before names


class TokenFileError(Exception):
    """The token file cannot be used: unreadable, readable by others, or a line that is not a named token."""


@dataclass(frozen=True)
class NamedToken:
    """A token, its name, and whether it may act (``writes``) or only read."""

    name: str
    secret: str
    writes: bool


def check_name(name: str) -> str:
    """``name`` if it may name a token; ValueError saying what a name may be otherwise."""
    if not NAME.match(name):
        raise ValueError(f"{name[:60]!r} is not a token name: 1-40 letters, digits and ._@-, "
                         "starting with a letter or digit")
    return name


def parse_tokens(text: str, where: str, read_only: bool = False, legacy_name: str = LEGACY_NAME
                 ) -> tuple[NamedToken, ...]:
    """The tokens of a token file's ``text`` (``where`` names it in errors); TokenFileError for a bad line."""
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) == 1 and len(lines[0][1]) == 1:
        lines = [(lines[0][0], [legacy_name, lines[0][1][0]])]
    tokens: list[NamedToken] = []
    for number, fields in lines:
        if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] != "read"):
            raise TokenFileError(f"{where} line {number}: expected NAME TOKEN [read]")
        try:
            name = check_name(fields[0])
        except ValueError as error:
            raise TokenFileError(f"{where} line {number}: {error}") from None
        if len(fields[1]) < MIN_TOKEN_LENGTH:
            raise TokenFileError(f"{where} line {number}: token {name} is shorter than {MIN_TOKEN_LENGTH} characters")
        if any(t.name == name for t in tokens) or any(t.secret == fields[1] for t in tokens):
            raise TokenFileError(f"{where} line {number}: token {name} repeats a name or a token")
        tokens.append(NamedToken(name, fields[1], writes=not read_only and len(fields) == 2))
    if not tokens:
        raise TokenFileError(f"{where} holds no token of at least {MIN_TOKEN_LENGTH} characters")
    return tuple(tokens)


def render_tokens(tokens: tuple[NamedToken, ...]) -> str:
    """The text of a token file holding ``tokens`` (what ``parse_tokens`` reads back)."""
    lines = ["# skynet dashboard tokens: NAME TOKEN [read]; remove a line to revoke that token"]
    lines += [f"{t.name} {t.secret}{'' if t.writes else ' read'}" for t in tokens]
    return "\n".join(lines) + "\n"


def new_secret() -> str:
    """A new random token."""
    return secrets.token_urlsafe(32)


def write_tokens(path: Path, tokens: tuple[NamedToken, ...]) -> None:
    """Replace the token file at ``path`` with ``tokens``, atomically, mode 0600 from its creation."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(render_tokens(tokens))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class TokenFile:
    """The named tokens of one file, re-read whenever the file changes (so that a revocation holds at once)."""

    def __init__(self, path: Path, what: str = "token file", read_only: bool = False,
                 legacy_name: str = LEGACY_NAME) -> None:
        self.path = path
        self.what = what
        self.read_only = read_only
        self.legacy_name = legacy_name
        self._lock = threading.Lock()
        self._identity: tuple[int, int, int] | None = None
        self._tokens: tuple[NamedToken, ...] = ()
        self._error: str | None = None
        self.tokens()  # a file that cannot be used stops the dashboard at its start
        if self._error:
            raise TokenFileError(self._error)

    def tokens(self) -> tuple[NamedToken, ...]:
        """The file's tokens as it is now; none while it cannot be used (logged)."""
        try:
            status = os.stat(self.path)
            identity = (status.st_ino, status.st_size, status.st_mtime_ns)
        except OSError as error:
            identity, reason = None, f"cannot read {self.what} {self.path}: {error.strerror}"
        with self._lock:
            if identity is not None and identity == self._identity:
                return self._tokens if self._error is None else ()
            self._identity, self._tokens = identity, ()
            try:
                if identity is None:
                    raise TokenFileError(reason)
                self._tokens = parse_tokens(read_secret_file(self.path, self.what), f"{self.what} {self.path}",
                                            self.read_only, self.legacy_name)
                self._error = None
            except (TokenFileError, SecretFileError) as error:
                if str(error) != self._error:
                    log.error("%s: every token refused until fixed", error)
                self._error = str(error)
            return self._tokens
