"""Who may read and who may act through the dashboard, and the cross-site checks on every action.

Reads (pages, GET /api/*, /metrics, static files) are open to whoever reaches the
server by default, which binds loopback unless a token is configured. With reads
protected (``skynet monitor serve --reads token``) every read needs a token too:
the write token, or a separate read-only token that can never act. Actions need
the write token. A token is sent as ``Authorization: Bearer <token>`` or as the
password of HTTP basic auth (the user name is then recorded as the actor).

Cross-site protection, because a browser sends basic credentials on its own:
an action must carry the custom header ``X-Skynet-Request: 1`` (a cross-site
form cannot set it, and a cross-site fetch that sets it needs a CORS preflight
this server never grants), and its ``Origin`` and ``Sec-Fetch-Site``, when the
browser sends them, must say same-origin.

Everything in a request is untrusted; the token file is trusted configuration.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CSRF_HEADER = "X-Skynet-Request"
_ACTOR = re.compile(r"[^A-Za-z0-9._@-]+")


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


class AuthConfigError(Exception):
    """The dashboard's authentication is configured in a way that cannot be served safely."""


class Refused(Exception):
    """A request may not act: ``status`` is 401 (who are you?) or 403 (not from here)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_token_file(path: Path, what: str = "token file") -> str:
    """The token in ``path`` (its first line); AuthConfigError for a file others may read, or a short token."""
    try:
        text = read_secret_file(path, what)
    except SecretFileError as error:
        raise AuthConfigError(str(error)) from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < 16:
        raise AuthConfigError(f"{what} {path} holds no token of at least 16 characters")
    return token


@dataclass(frozen=True)
class Auth:
    """The dashboard's secrets and whether reads need one.

    ``token`` may read and act (None: actions are refused to everybody); ``read_token`` may
    only read; with ``protect_reads`` False, reads need no token at all.
    """

    token: str | None = None
    read_token: str | None = None
    protect_reads: bool = False

    def __post_init__(self) -> None:
        if self.protect_reads and self.token is None and self.read_token is None:
            raise AuthConfigError("reads are protected but no token is configured: nobody could read "
                                  "(give --token-file or --read-token-file)")
        if self.read_token is not None and not self.protect_reads:
            raise AuthConfigError("a read-only token is given but reads are open: add --reads token")
        if self.read_token is not None and self.read_token == self.token:
            raise AuthConfigError("the read-only token is the write token: it could act")

    @classmethod
    def from_file(cls, path: Path) -> Auth:
        """The write token of ``path`` (see ``read_token_file``), reads open."""
        return cls(read_token_file(path))

    @classmethod
    def from_files(cls, token_file: Path | None, read_token_file_path: Path | None = None,
                   protect_reads: bool = False) -> Auth:
        """The dashboard's authentication from its token files (each optional), checked as ``read_token_file``."""
        return cls(read_token_file(token_file) if token_file else None,
                   read_token_file(read_token_file_path, "read-only token file") if read_token_file_path else None,
                   protect_reads)

    def _who(self, authorization: str) -> tuple[str, bool] | None:
        """Who sent the header ``authorization`` and whether they may act; None for wrong credentials."""
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            secret, actor = value, "dashboard:token"
        elif scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Refused(401, "malformed basic credentials") from None
            actor = f"dashboard:{_ACTOR.sub('-', user)[:40] or 'basic'}"
        else:
            return None
        # Both comparisons always run, so the time taken does not tell which token came close.
        writes = self.token is not None and hmac.compare_digest(secret.encode(), self.token.encode())
        reads = self.read_token is not None and hmac.compare_digest(secret.encode(), self.read_token.encode())
        if writes:
            return actor, True
        if reads:
            return (actor if scheme.lower() == "basic" else "dashboard:read-token"), False
        return None

    def actor(self, authorization: str | None) -> str:
        """Who sent ``authorization`` (an ``Authorization`` header) to act; raise Refused(401), or Refused(403)
        for the read-only token."""
        if self.token is None:
            raise Refused(401, "actions are disabled: the dashboard was started without --token-file")
        if not authorization:
            raise Refused(401, "authentication required (Bearer token or basic auth)")
        who = self._who(authorization)
        if who is None:
            raise Refused(401, "wrong credentials")
        if not who[1]:
            raise Refused(403, "the read-only token may not act")
        return who[0]

    def reader(self, authorization: str | None) -> str:
        """Who sent ``authorization`` to read (``anonymous`` while reads are open), or raise Refused(401)."""
        if not self.protect_reads:
            return "anonymous"
        if not authorization:
            raise Refused(401, "authentication required to read this dashboard (Bearer token or basic auth)")
        who = self._who(authorization)
        if who is None:
            raise Refused(401, "wrong credentials")
        return who[0]


def check_same_origin(headers: Mapping[str, str], host_url: str) -> None:
    """Raise Refused(403) unless the request is provably not a cross-site one.

    ``host_url`` is the server's own origin as the request addressed it (scheme://host[:port]).
    """
    if headers.get(CSRF_HEADER) != "1":
        raise Refused(403, f"missing {CSRF_HEADER}: 1 header (cross-site protection)")
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = headers.get("Origin")
    if origin is not None and _origin(origin) != _origin(host_url):
        raise Refused(403, f"cross-site request refused (Origin: {origin[:100]})")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url.strip())
    return parts.scheme.lower(), parts.netloc.lower()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name, an address or a bracketed IPv6 address) is ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: Auth) -> None:
    """Refuse to serve on a non-loopback address without a token.

    With only a read-only token, reads are protected and actions refused: safe to expose.
    """
    if auth.token is None and auth.read_token is None and not is_loopback(host):
        raise AuthConfigError(f"refusing to serve on {host} without --token-file: "
                              "anyone who can reach it could steer rollouts")
