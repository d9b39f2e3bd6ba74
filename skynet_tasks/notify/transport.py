"""HTTP(S) requests of the notifiers: JSON in, JSON out, bounded in time, failures sorted into retry or give up.

What a receiver answers is untrusted: only its status and, for GitHub, a JSON body are read, and a
body is read to at most ``MAX_RESPONSE`` bytes.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Seconds to connect, and between two reads. Short: the task runs in the worker's one pool child, where an
# update or a build for this instance waits behind it; a receiver that hangs is retried later instead.
TIMEOUT = 5.0
MAX_RESPONSE = 1024 * 1024
# Statuses worth another try later: the receiver is busy or down, or asks us to slow down.
RETRIED = frozenset({408, 425, 429, 500, 502, 503, 504})


class NotifyRetry(Exception):
    """A delivery that failed for now (no answer, a timeout, a 5xx or 429): worth trying again later."""


class NotifyRefused(Exception):
    """A delivery the receiver refused for good (a 4xx such as a bad signature or token): not retried."""


@dataclass(frozen=True)
class Answer:
    """A receiver's answer: its status, and its body parsed as JSON when it is some."""

    status: int
    body: Any


def _context(ca_bundle: Path | None) -> ssl.SSLContext:
    # The system's trust store, or only the CA bundle the config names (a private receiver's own CA).
    return ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)


def send(method: str, url: str, body: bytes | None, headers: dict[str, str], ca_bundle: Path | None = None,
         timeout: float = TIMEOUT) -> Answer:
    """Send one request; the answer if it is a 2xx, NotifyRetry or NotifyRefused otherwise."""
    if not url.startswith(("https://", "http://")):  # never file: or another scheme urllib would open
        raise NotifyRefused(f"{method} {url}: not an http(s) URL")
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - checked above
    context = _context(ca_bundle) if url.startswith("https:") else None
    try:
        # The scheme is checked above (bandit's B310: urlopen would also open file: URLs).
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310 # nosec B310
            status, raw = response.status, response.read(MAX_RESPONSE)
    except urllib.error.HTTPError as error:
        status = error.code
        error.close()
        what = f"{method} {url}: HTTP {status}"
        raise (NotifyRetry(what) if status in RETRIED else NotifyRefused(what)) from None
    except (OSError, ValueError) as error:  # refused, reset, timed out, a TLS failure, a bad answer
        raise NotifyRetry(f"{method} {url}: {type(error).__name__}: {error}") from None
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return Answer(status, parsed)
