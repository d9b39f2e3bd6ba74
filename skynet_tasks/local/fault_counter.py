"""What the local AWS's fault modes share: the services they may throttle, and the count of faults served.

Its own module so that the modes (``faults_conflicts``, ``faults_throttle``) and their
installer (``faults``) depend on it, not on each other.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

from skynet_tasks.httpcheck import http_get

COUNTERS_PATH = "/skynet-faults/"  # where the server answers its counts
THROTTLED_SERVICES: tuple[str, ...] = ("dynamodb", "sqs", "s3")


class FaultCounter:
    """How many faults of each kind this server has served (thread-safe)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, kind: str) -> None:
        """Count one fault of ``kind``."""
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[str, int]:
        """The counts so far."""
        with self._lock:
            return dict(self._counts)

    @staticmethod
    def read(host: str, port: int, timeout: float = 5.0) -> dict[str, int]:
        """The counts of the moto server at ``host:port`` (from a test or an operator's script)."""
        status, body = http_get(host, port, COUNTERS_PATH, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"{host}:{port}{COUNTERS_PATH} answered {status}: is it running with --faults?")
        return {str(k): int(v) for k, v in json.loads(body).items()}
