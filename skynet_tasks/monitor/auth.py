"""Who may act through the dashboard, and the cross-site checks on every action.

Reads (pages, GET /api/*, /metrics) are open to whoever reaches the server,
which binds loopback unless a token is configured. Actions need the token, as
``Authorization: Bearer <token>`` or as the password of HTTP basic auth (the
user name is then recorded as the actor).

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


@dataclass(frozen=True)
class Auth:
    """The dashboard's one secret; ``token`` None means actions are refused to everybody."""

    token: str | None = None

    @classmethod
    def from_file(cls, path: Path) -> Auth:
        """Read the token (the file's first line); refuse a file others may read, or an empty or short token."""
        try:
            text = read_secret_file(path, "token file")
        except SecretFileError as error:
            raise AuthConfigError(str(error)) from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if len(token) < 16:
            raise AuthConfigError(f"token file {path} holds no token of at least 16 characters")
        return cls(token)

    def actor(self, authorization: str | None) -> str:
        """Who sent ``authorization`` (an ``Authorization`` header), or raise Refused(401)."""
        if self.token is None:
            raise Refused(401, "actions are disabled: the dashboard was started without --token-file")
        if not authorization:
            raise Refused(401, "authentication required (Bearer token or basic auth)")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            if hmac.compare_digest(value.encode(), self.token.encode()):
                return "dashboard:token"
        elif scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Refused(401, "malformed basic credentials") from None
            if hmac.compare_digest(password.encode(), self.token.encode()):
                return f"dashboard:{_ACTOR.sub('-', user)[:40] or 'basic'}"
        raise Refused(401, "wrong credentials")


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
    """Refuse to serve on a non-loopback address without a token."""
    if auth.token is None and not is_loopback(host):
        raise AuthConfigError(f"refusing to serve on {host} without --token-file: "
                              "anyone who can reach it could steer rollouts")
