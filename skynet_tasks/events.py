"""Maintenance events as they travel on the FIFO queue: conductor events to and from small dicts.

Messages on Skynet's queues are sent by Skynet's own instances and CLI (the
IAM policies allow nobody else), but they are still validated here so that a
malformed one fails with a clear error instead of corrupting a decision.
"""

from __future__ import annotations

import math
from typing import Any

from skynet_tasks import names
from skynet_tasks.conductor import (
    OPERATOR_ACTIONS,
    Event,
    OperatorAction,
    Rollout,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
)
from skynet_tasks.policy import (
    PolicyError,
    check_timing,
    parse_canary,
    parse_max_parallel,
    parse_min_healthy_time,
    parse_on_failure,
    parse_progress_deadline,
    parse_promote_timeout,
)
from skynet_tasks.policy_windows import WindowError, parse_windows
from skynet_tasks.states import RolloutKind

# The longest update error a report carries (the ledger keeps it on the ticket, the dashboard shows it).
ERROR_LIMIT = 2000


class BadEvent(ValueError):
    """A maintenance message that does not describe a valid event."""


def _text(data: dict[str, Any], key: str, limit: int = 200) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadEvent(f"event field {key!r} must be a non-empty string of at most {limit} characters")
    return value


def _instance(data: dict[str, Any], key: str = "instance") -> str:
    try:
        return names.check_name_part("instance id", _text(data, key))
    except ValueError as error:
        raise BadEvent(str(error)) from None


def to_message(event: Event) -> tuple[dict[str, Any], str]:
    """The message body of an event, and the deduplication key that makes resending it harmless."""
    if isinstance(event, RolloutReady):
        r = event.rollout
        return ({"type": "rollout_ready", "rollout_id": r.id, "group": r.group, "release": r.release,
                 "kind": str(r.kind), "canary": r.canary, "update_timeout": r.update_timeout,
                 "created_at": r.created_at, "max_parallel": list(r.max_parallel),
                 "min_healthy_time": r.min_healthy_time, "progress_deadline": r.progress_deadline,
                 "on_failure": r.on_failure, "promotion": r.promotion,
                 "promote_timeout": r.promote_timeout, "windows": list(r.windows),
                 "ignore_windows": r.ignore_windows}, f"ready:{r.id}")
    if isinstance(event, TicketTaken):
        return ({"type": "ticket_taken", "rollout_id": event.rollout_id, "instance": event.instance},
                f"ticket:{event.rollout_id}:{event.instance}")
    if isinstance(event, UpdateReported):
        return ({"type": "update_reported", "rollout_id": event.rollout_id, "ticket": event.ticket,
                 "instance": event.instance, "ok": event.ok,
                 # Cut as the reader cuts it: a longer one would only make the report too large to send.
                 "error": event.error[:ERROR_LIMIT] if event.error is not None else None,
                 "reported_at": event.reported_at},
                f"result:{event.rollout_id}:{event.ticket}:{event.instance}:{event.ok}")
    if isinstance(event, OperatorAction):
        return ({"type": "operator", "rollout_id": event.rollout_id, "action": event.action, "actor": event.actor},
                f"operator:{event.rollout_id}:{event.action}:{event.actor}")
    return {"type": "tick"}, "tick"


def from_message(data: Any) -> Event:
    """The event a message body (untrusted) describes; BadEvent for anything malformed or unknown."""
    if not isinstance(data, dict):
        raise BadEvent("an event must be an object")
    kind = data.get("type")
    if kind == "rollout_ready":
        timeout = data.get("update_timeout")
        if not isinstance(timeout, int | float) or not 1 <= timeout <= 3600:
            raise BadEvent("update_timeout must be a number of seconds between 1 and 3600")
        canary = _instance(data, "canary") if data.get("canary") is not None else None
        try:
            rollout_kind = RolloutKind(str(data.get("kind")))
        except ValueError:
            raise BadEvent(f"unknown rollout kind {data.get('kind')!r}") from None
        try:  # absent from the messages of an agent older than the rollout policy: one at a time, auto, any time
            max_parallel = parse_max_parallel(data.get("max_parallel"), "max_parallel")
            bake = parse_min_healthy_time(data.get("min_healthy_time"), "min_healthy_time")
            progress_deadline = parse_progress_deadline(data.get("progress_deadline"), "progress_deadline")
            check_timing(bake, progress_deadline, float(timeout), "rollout_ready")
            on_failure = parse_on_failure(data.get("on_failure"), "on_failure")
            promotion = parse_canary(data.get("promotion"), "promotion")
            promote_timeout = parse_promote_timeout(data.get("promote_timeout"), "promote_timeout")
            windows = parse_windows(data.get("windows") or None, "windows")
        except (PolicyError, WindowError) as refused:
            raise BadEvent(str(refused)) from None
        if not isinstance(data.get("ignore_windows", False), bool):
            raise BadEvent("ignore_windows must be true or false")
        return RolloutReady(Rollout(id=_text(data, "rollout_id"), group=_text(data, "group"),
                                    release=_text(data, "release"), kind=rollout_kind, canary=canary,
                                    update_timeout=float(timeout), created_at=float(data.get("created_at") or 0),
                                    max_parallel=max_parallel, min_healthy_time=bake,
                                    progress_deadline=progress_deadline, on_failure=on_failure,
                                    promotion=promotion, promote_timeout=promote_timeout, windows=windows,
                                    ignore_windows=bool(data.get("ignore_windows", False))))
    if kind == "ticket_taken":
        return TicketTaken(_text(data, "rollout_id"), _instance(data))
    if kind == "update_reported":
        number = data.get("ticket")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise BadEvent("ticket must be a positive integer")
        if not isinstance(data.get("ok"), bool):
            raise BadEvent("ok must be true or false")
        error, reported_at = data.get("error"), data.get("reported_at")
        if reported_at is not None and (not isinstance(reported_at, int | float) or isinstance(reported_at, bool)
                                        or not math.isfinite(reported_at)):
            raise BadEvent("reported_at must be a time in seconds")
        return UpdateReported(_text(data, "rollout_id"), number, _instance(data), data["ok"],
                              str(error)[:ERROR_LIMIT] if error is not None else None,
                              float(reported_at) if reported_at is not None else None)
    if kind == "operator":
        action = data.get("action")
        if action not in OPERATOR_ACTIONS:
            raise BadEvent(f"unknown operator action {action!r}")
        return OperatorAction(_text(data, "rollout_id"), action, _text(data, "actor"))
    if kind == "tick":
        return Tick()
    raise BadEvent(f"unknown event type {kind!r}")
