"""Whether what the dashboard shows has changed: a change token, and a long poll on it.

The pages used to re-fetch themselves every 2 s, each open tab reading the whole env every time.
Now an open (visible) tab asks ``GET /api/changes?since=TOKEN``: the answer comes as soon as the
token differs from ``since`` (or after ``wait`` seconds with the same token), and the tab re-fetches
its page only when the token changed. The token is computed at most once per ``interval`` for the
whole process, whatever the number of tabs, from cheap reads (``EnvFingerprint``): each group's
``version`` (which every conductor decision increments), the registry's entries without their
heartbeat times, and the queue cache's generation. An action taken through this dashboard bumps
it at once.

A long poll holds one of gunicorn's threads while it waits, so at most ``max_waiters`` wait at a
time; past that, the answer comes at once and the tab asks again after ``retry_ms`` (a short poll,
still of the cheap token, never of the page).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from skynet_tasks.monitor.data import MonitorData
from skynet_tasks.monitor.queue_cache import TTL_SECONDS

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 25.0
MAX_WAITERS = 4  # half of gunicorn's 8 threads by default (``skynet monitor serve --threads`` passes its half)
# Fields of a registry entry that a page shows and that do not change at every heartbeat.
ENTRY_FIELDS = ("group", "address", "port", "release", "health", "agent_version", "config_version",
                "last_task", "last_outcome", "refused_count")


class EnvFingerprint:
    """What the env looks like, leaving out what changes on its own (heartbeat times): equal when the
    pages would show the same thing."""

    def __init__(self, data: MonitorData, groups_ttl: float = TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.data = data
        self.groups_ttl = groups_ttl
        self.clock = clock
        self._groups: tuple[float, list[str]] | None = None

    def __call__(self) -> Hashable:
        """A hashable summary of the env's groups' versions, registry entries and queue depths."""
        now = self.clock()
        if self._groups is None or now - self._groups[0] >= self.groups_ttl:
            # Listing groups is a scan of the state table: new groups are rare, so once per ``groups_ttl``.
            self._groups = (now, self.data.ledger.list_groups())
        versions = tuple((g, self.data.ledger.group_info(g).get("version")) for g in self._groups[1])
        entries = tuple((e["id"], e["stale"], *(str(e.get(f)) for f in ENTRY_FIELDS)) for e in self.data.instances())
        return versions, entries, self.data.queue_cache.generation()


class ChangeWatch:
    """A change token over ``probe`` (called at most once per ``interval`` seconds), and waits on it."""

    def __init__(self, probe: Callable[[], Hashable], interval: float = 2.0, max_waiters: int = MAX_WAITERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.probe = probe
        self.interval = interval
        self.clock = clock
        self._condition = threading.Condition()
        self._waiters = threading.BoundedSemaphore(max_waiters)
        self._probing = threading.Lock()
        # A new prefix per process: a tab that saw a token of the dashboard before a restart refreshes.
        self._prefix = secrets.token_hex(4)
        self._counter = 0
        self._last: Hashable = None
        self._probed_at: float | None = None

    def bump(self) -> str:
        """Mark a change known here (an action accepted) and wake every waiter; the new token."""
        with self._condition:
            self._counter += 1
            self._condition.notify_all()
            return self._token()

    def token(self) -> str:
        """The current token, probing first if the last probe is ``interval`` old."""
        # One thread probes; the others keep the token they have until it is done.
        if self._probing.acquire(blocking=False):
            try:
                with self._condition:
                    due = self._probed_at is None or self.clock() - self._probed_at >= self.interval
                if due:
                    self._probe()
            finally:
                self._probing.release()
        with self._condition:
            return self._token()

    def wait(self, since: str, timeout: float) -> tuple[str, bool]:
        """The token once it differs from ``since`` or after ``timeout`` seconds, and whether this call could
        wait at all (False: too many waiters; the caller should ask again later)."""
        if not self._waiters.acquire(blocking=False):
            return self.token(), False
        try:
            deadline = self.clock() + max(0.0, min(timeout, MAX_WAIT_SECONDS))
            while True:
                token = self.token()
                left = deadline - self.clock()
                if token != since or left <= 0:
                    return token, True
                with self._condition:
                    if self._token() == since:
                        self._condition.wait(min(left, self.interval))
        finally:
            self._waiters.release()

    def _probe(self) -> None:
        try:
            value = self.probe()
        except Exception as error:  # an observer must not break the page: the token stays as it was
            log.warning("change probe failed (token kept): %s", error)
            value = self._last
        with self._condition:
            self._probed_at = self.clock()
            if value != self._last:
                self._last = value
                self._counter += 1
                self._condition.notify_all()

    def _token(self) -> str:
        return f"{self._prefix}-{self._counter}"


def changes_body(token: str, waited: bool, retry_ms: int) -> dict[str, Any]:
    """The JSON answer of ``/api/changes``: the token, and when to ask again (0: at once)."""
    return {"token": token, "retry_ms": 0 if waited else retry_ms}
