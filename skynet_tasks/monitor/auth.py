"""Who may read and who may act through the dashboard, and the cross-site checks on every action.

Reads (pages, GET /api/*, /metrics, static files) are open to whoever reaches the
server by default, which binds loopback unless a token is configured. With reads
protected (``skynet monitor serve --reads token``) every read needs a token too:
a token that may act, or a read-only one that never can. Actions need a token that
may act. Tokens are named (``skynet_tasks.monitor.tokens``): the audit trail records
``dashboard:<name>`` for an action, and a token removed from its file is refused
from the next request on. A token is sent as ``Authorization: Bearer <token>`` or
as the password of HTTP basic auth (for the unnamed token of the old one-line
file, the basic user name is then recorded as the actor).

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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from skynet_tasks.monitor.secretfile import SecretFileError, read_secret_file
from skynet_tasks.monitor.tokens import LEGACY_NAME, NamedToken, TokenFile, TokenFileError

__all__ = ["SecretFileError", "read_secret_file"]  # the webhook's secret file is read through here too

CSRF_HEADER = "X-Skynet-Request"
_ACTOR = re.compile(r"[^A-Za-z0-9._@-]+")


class AuthConfigError(Exception):
    """The dashboard's authentication is configured in a way that cannot be served safely."""


class Refused(Exception):
    """A request may not act: ``status`` is 401 (who are you?) or 403 (not from here)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _token_file(path: Path, what: str, read_only: bool, legacy_name: str) -> TokenFile:
    try:
        return TokenFile(path, what, read_only, legacy_name)
    except TokenFileError as error:
        raise AuthConfigError(str(error)) from None


def read_token_file(path: Path, what: str = "token file") -> str:
    """The first token in ``path``; AuthConfigError for a file others may read, a bad line, or a short token."""
    return _token_file(path, what, False, LEGACY_NAME).tokens()[0].secret


@dataclass(frozen=True)
class Auth:
    """The dashboard's tokens and whether reads need one.

    Either static: ``token`` may read and act (named ``token``), ``read_token`` may only read
    (named ``read-token``); or named tokens from ``token_file`` (and ``read_file``, all read-only),
    re-read whenever a file changes, so a revoked token is refused from its next request on.
    With neither a ``token`` nor a ``token_file``, actions are refused to everybody; with
    ``protect_reads`` False, reads need no token at all.
    """

    token: str | None = None
    read_token: str | None = None
    protect_reads: bool = False
    token_file: TokenFile | None = None
    read_file: TokenFile | None = None

    def __post_init__(self) -> None:
        can_read = self.can_act or self.read_token is not None or self.read_file is not None
        if self.protect_reads and not can_read:
            raise AuthConfigError("reads are protected but no token is configured: nobody could read "
                                  "(give --token-file or --read-token-file)")
        if (self.read_token is not None or self.read_file is not None) and not self.protect_reads:
            raise AuthConfigError("a read-only token is given but reads are open: add --reads token")
        secrets = [t.secret for t in self.named()]
        if len(set(secrets)) != len(secrets):
            raise AuthConfigError("the read-only token is the write token: it could act")

    @property
    def can_act(self) -> bool:
        """Whether this dashboard was given any token that may act (it may since have been revoked)."""
        return self.token is not None or self.token_file is not None

    @classmethod
    def from_file(cls, path: Path) -> Auth:
        """The named tokens of ``path`` (see ``skynet_tasks.monitor.tokens``), reads open."""
        return cls.from_files(path)

    @classmethod
    def from_files(cls, token_file: Path | None, read_token_file_path: Path | None = None,
                   protect_reads: bool = False) -> Auth:
        """The dashboard's authentication from its token files (each optional), each followed as it changes."""
        tokens = _token_file(token_file, "token file", False, LEGACY_NAME) if token_file else None
        reads = (_token_file(read_token_file_path, "read-only token file", True, "read-token")
                 if read_token_file_path else None)
        first = next((t.secret for t in tokens.tokens() if t.writes), None) if tokens else None
        return cls(first, None, protect_reads, tokens, reads)

    def named(self) -> tuple[NamedToken, ...]:
        """Every token accepted now, with its name and whether it may act."""
        if self.token_file is not None or self.read_file is not None:
            return ((self.token_file.tokens() if self.token_file else ())
                    + (self.read_file.tokens() if self.read_file else ()))
        return ((NamedToken(LEGACY_NAME, self.token, True),) if self.token is not None else ()) + (
            (NamedToken("read-token", self.read_token, False),) if self.read_token is not None else ())

    def _who(self, authorization: str) -> tuple[str, bool] | None:
        """Who sent the header ``authorization`` and whether they may act; None for wrong credentials."""
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        user = None
        if scheme.lower() == "bearer":
            secret = value
        elif scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Refused(401, "malformed basic credentials") from None
        else:
            return None
        # Every comparison runs, so the time taken does not tell which token came close.
        matches = [t for t in self.named() if hmac.compare_digest(secret.encode(), t.secret.encode())]
        if not matches:
            return None
        found = matches[0]
        if user is not None and found.name in (LEGACY_NAME, "read-token"):
            # An unnamed token says nothing of who holds it: the user name they typed is all there is.
            return f"dashboard:{_ACTOR.sub('-', user)[:40] or 'basic'}", found.writes
        return f"dashboard:{found.name}", found.writes

    def actor(self, authorization: str | None) -> str:
        """Who sent ``authorization`` (an ``Authorization`` header) to act; raise Refused(401), or Refused(403)
        for a read-only token."""
        if not self.can_act:
            raise Refused(401, "actions are disabled: the dashboard was started without --token-file")
        if not authorization:
            raise Refused(401, "authentication required (Bearer token or basic auth)")
        who = self._who(authorization)
        if who is None:
            raise Refused(401, "wrong credentials (or a revoked token)")
        if not who[1]:
            raise Refused(403, "a read-only token may not act")
        return who[0]

    def reader(self, authorization: str | None) -> str:
        """Who sent ``authorization`` to read (``anonymous`` while reads are open), or raise Refused(401)."""
        if not self.protect_reads:
            return "anonymous"
        if not authorization:
            raise Refused(401, "authentication required to read this dashboard (Bearer token or basic auth)")
        who = self._who(authorization)
        if who is None:
            raise Refused(401, "wrong credentials (or a revoked token)")
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
    if not auth.can_act and auth.read_token is None and auth.read_file is None and not is_loopback(host):
        raise AuthConfigError(f"refusing to serve on {host} without --token-file: "
                              "anyone who can reach it could steer rollouts")
