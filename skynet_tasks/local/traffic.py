"""A user of the app: requests through the proxy, one at a time or kept up while something happens.

The demo and the cluster tests watch a rollout through it: a rolling update should fail no request.
The URL is the local cluster's own proxy (loopback, or an address inside the cluster's namespaces);
the answers are the sample app's JSON, read only for the instance and release that served them.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Traffic:
    """What a client saw: each request's outcome (a status, or why none came), and each JSON answer."""

    outcomes: list[int | str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def failures(self) -> list[int | str]:
        """The outcomes that were not a 200 with a JSON answer."""
        return [o for o in self.outcomes if o != 200]

    def reasons(self) -> Counter[str]:
        """Why requests failed (``HTTP 502``, ``ConnectionRefusedError``…), counted."""
        return Counter(f"HTTP {o}" if isinstance(o, int) else o for o in self.failures())


def request(url: str, timeout: float = 10) -> tuple[int | str, dict[str, Any] | None]:
    """One GET of ``url``: its status, or why no answer came; and the app's JSON answer of a 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  # nosec B310 - the cluster's proxy
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return error.code, None
    except urllib.error.URLError as error:
        return type(error.reason).__name__ if isinstance(error.reason, BaseException) else str(error.reason), None
    except (OSError, ValueError) as error:  # a reset, a timeout, an answer that is not JSON
        return type(error).__name__, None


@contextmanager
def traffic_to(url: str, pause: float = 0.02) -> Iterator[Traffic]:
    """Keep requesting ``url`` from a thread while the block runs; yield what it saw so far."""
    seen = Traffic()
    stop = threading.Event()

    def keep_requesting() -> None:
        while not stop.is_set():
            outcome, answer = request(url)
            seen.outcomes.append(outcome)
            if answer is not None:
                seen.answers.append(answer)
            stop.wait(pause)

    thread = threading.Thread(target=keep_requesting, name="traffic", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
