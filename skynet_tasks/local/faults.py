"""Fault modes of the local AWS: moto's server made to misbehave the way AWS does, chosen per run.

moto serves every request, never throttles, and (with ``compat.moto_dynamodb``) runs DynamoDB
requests one at a time, so code that is wrong only under AWS's real behaviour passes every
local test. These modes are deliberate misbehaviours, not fixes of moto, so they live here and
not in ``compat/``. ``python -m skynet_tasks.local.moto_main --faults SPEC`` installs them;
SPEC is a comma-separated list of:

``conflicts[=MS]``
    DynamoDB transactions that overlap in time on an item are cancelled, as DynamoDB cancels
    them: the later ``TransactWriteItems`` gets ``TransactionCanceledException`` with the
    reason ``TransactionConflict`` for each item held by another transaction (``None`` for
    the others), and a single ``PutItem``/``UpdateItem``/``DeleteItem`` on a held item gets
    ``TransactionConflictException``. Each transaction holds its items for MS milliseconds
    (default 50) before it is applied, so that concurrent writers really overlap here, where
    each request otherwise takes well under a millisecond. (local/faults_conflicts.py)
``throttle[=RATE[:SERVICES]]``
    A fraction RATE (default 0.1) of the requests to SERVICES (``+``-separated, default
    ``dynamodb+sqs+s3``) is refused with the service's throttling error: DynamoDB 400
    ``ProvisionedThroughputExceededException`` on item operations and ``ThrottlingException`` on
    table operations, SQS 400 ``RequestThrottled``, S3 503 ``SlowDown``. (local/faults_throttle.py)
``duplicates[=RATE]``
    A fraction RATE (default 0.05) of SQS deletes leave the message to be delivered again, once: on a
    standard queue a copy is put back (at-least-once delivery), on a FIFO queue the delete comes too
    late (after the visibility timeout) and the message is received again in its group's line.
    (local/faults_duplicates.py)
``stale-reads[=SECONDS]``
    For SECONDS (default 1) after a DynamoDB write, eventually consistent reads of the items it changed
    (no ``ConsistentRead``, or an index) answer their previous version. S3 is strongly consistent since
    2020, so its reads stay fresh. (local/faults_stale.py)

Every fault served is logged and counted; ``GET /skynet-faults/`` on the server answers the
counts as JSON (``FaultCounter.read``), so a test can show that a fault really happened.
Trusted input: SPEC comes from the operator's command line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from skynet_tasks.local.fault_counter import COUNTERS_PATH, THROTTLED_SERVICES, FaultCounter

log = logging.getLogger(__name__)

DEFAULT_CONFLICT_HOLD_MS = 50.0
DEFAULT_THROTTLE_RATE = 0.1
DEFAULT_DUPLICATE_RATE = 0.05
DEFAULT_STALE_SECONDS = 1.0
MODES = "conflicts[=MS], throttle[=RATE[:SERVICES]], duplicates[=RATE], stale-reads[=SECONDS]"


class FaultSpecError(ValueError):
    """A ``--faults`` value that names no known mode or gives it a bad parameter."""


@dataclass(frozen=True)
class Faults:
    """The fault modes of one moto server run; the defaults are a well-behaved server."""

    conflict_hold: float | None = None  # seconds a transaction holds its items; None: mode off
    throttle_rate: float = 0.0  # fraction of requests refused as throttled
    throttled: tuple[str, ...] = THROTTLED_SERVICES  # the services whose requests may be throttled
    duplicate_rate: float = 0.0  # fraction of SQS deletes that leave the message to be delivered again
    stale_window: float = 0.0  # seconds after a DynamoDB write that eventually consistent reads are stale

    @property
    def active(self) -> bool:
        """Whether any mode is on."""
        return (self.conflict_hold is not None or self.throttle_rate > 0 or self.duplicate_rate > 0
                or self.stale_window > 0)

    def spec(self) -> str:
        """This set as a ``--faults`` value (empty when no mode is on)."""
        parts = []
        if self.conflict_hold is not None:
            parts.append(f"conflicts={self.conflict_hold * 1000:g}")
        if self.throttle_rate > 0:
            services = "" if self.throttled == THROTTLED_SERVICES else ":" + "+".join(self.throttled)
            parts.append(f"throttle={self.throttle_rate:g}{services}")
        if self.duplicate_rate > 0:
            parts.append(f"duplicates={self.duplicate_rate:g}")
        if self.stale_window > 0:
            parts.append(f"stale-reads={self.stale_window:g}")
        return ",".join(parts)


def parse_faults(spec: str | Iterable[str] | None) -> Faults:
    """The Faults named by ``spec`` (``"conflicts,throttle=0.1"``, or its parts); FaultSpecError if unknown."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec or ())
    conflict_hold: float | None = None
    throttle_rate = 0.0
    throttled = THROTTLED_SERVICES
    duplicate_rate = stale_window = 0.0
    for part in (p.strip() for p in parts):
        if not part:
            continue
        name, has_value, value = part.partition("=")
        if name == "conflicts":
            milliseconds = _number(part, value, DEFAULT_CONFLICT_HOLD_MS) if has_value else DEFAULT_CONFLICT_HOLD_MS
            if not 0 <= milliseconds <= 5000:
                raise FaultSpecError(f"{part!r}: the hold is in milliseconds, 0 to 5000")
            conflict_hold = milliseconds / 1000
        elif name == "throttle":
            rate, has_services, services = value.partition(":")
            throttle_rate = _number(part, rate, DEFAULT_THROTTLE_RATE)
            if has_services:
                throttled = tuple(dict.fromkeys(services.split("+")))
                unknown = [service for service in throttled if service not in THROTTLED_SERVICES]
                if unknown or not services:
                    raise FaultSpecError(f"{part!r}: services are {'+'.join(THROTTLED_SERVICES)}, or some of them")
            if not 0 < throttle_rate <= 1:
                raise FaultSpecError(f"{part!r}: the rate is a fraction of requests, above 0 and at most 1")
        elif name == "duplicates":
            duplicate_rate = _number(part, value, DEFAULT_DUPLICATE_RATE)
            if not 0 < duplicate_rate <= 1:
                raise FaultSpecError(f"{part!r}: the rate is a fraction of SQS deletes, above 0 and at most 1")
        elif name == "stale-reads":
            stale_window = _number(part, value, DEFAULT_STALE_SECONDS)
            if not 0 < stale_window <= 60:
                raise FaultSpecError(f"{part!r}: the window is in seconds, above 0 and at most 60")
        else:
            raise FaultSpecError(f"unknown fault mode {name!r} (known: {MODES})")
    return Faults(conflict_hold, throttle_rate, throttled, duplicate_rate, stale_window)


def _number(part: str, value: str, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        raise FaultSpecError(f"{part!r}: {value!r} is not a number") from None


def take_faults_argument(argv: list[str]) -> tuple[Faults, list[str]]:
    """Faults from ``--faults SPEC`` / ``--faults=SPEC`` in ``argv`` (may repeat), and argv without them."""
    rest: list[str] = []
    parts: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--faults":
            value = next(args, None)
            if value is None:
                raise FaultSpecError("--faults needs a value, e.g. --faults conflicts,throttle=0.1")
            parts += value.split(",")
        elif arg.startswith("--faults="):
            parts += arg[len("--faults="):].split(",")
        else:
            rest.append(arg)
    return parse_faults(parts), rest


def install(faults: Faults, stack: ExitStack) -> FaultCounter:
    """Make this process's moto server misbehave as ``faults`` says, until ``stack`` closes."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from skynet_tasks.compat.patching import replace
    from skynet_tasks.local import faults_conflicts, faults_duplicates, faults_stale, faults_throttle

    counter = FaultCounter()
    throttle = (faults_throttle.Throttle(faults.throttle_rate, counter, faults.throttled)
                if faults.throttle_rate > 0 else None)
    if faults.stale_window > 0:  # first: the conflicts mode's hold wraps it, outside its write lock
        faults_stale.install(faults.stale_window, counter, stack)
    if faults.duplicate_rate > 0:
        faults_duplicates.install(faults.duplicate_rate, counter, stack)
    if faults.conflict_hold is not None:
        faults_conflicts.install(faults.conflict_hold, counter, stack)

    def dispatch(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == COUNTERS_PATH:
            body = json.dumps(counter.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if throttle is not None:
            refused = throttle.maybe_refuse(getattr(self.get_application(environ), "service", None), environ,
                                            start_response)
            if refused is not None:
                return refused
        return moto_dispatch(self, environ, start_response)

    moto_dispatch = replace(stack, DomainDispatcherApplication, "__call__", dispatch)
    log.info("faults: %s", faults.spec() or "none")
    return counter
