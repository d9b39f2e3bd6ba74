"""moto's SQS receive: a long poll that waits idle, and FIFO message groups exclusive under long polling.

**Long poll.** moto 5's ``ReceiveMessage`` long poll waits with ``Condition.wait_for(lambda:
queue.messages)``, which returns at once while *any* message is visible. On a FIFO queue
whose message group is in flight, the waiting messages are visible but not deliverable, so
every long poll on the group's queue spins at 100% of a core for its whole wait. Skynet's
conductors long-poll the maintenance FIFO while one of them holds the group, so on a small
machine moto starved everything else and a hand-off took seconds. Real SQS holds such a poll
idle. Here a poll waits on the queue's condition until something changes that could give it a
message: a message added, deleted (a FIFO group freed) or its visibility changed (each of them
notifies), or the soonest moment a message's visibility timeout or delay ends (computed, since
nothing notifies then); ``RECHECK`` only bounds a wait, in case moto changes a queue some other way.

Idle polls used to look again every 0.1 s instead: with 40 instances (a conductor's poll and the
instance's own on each), 800 looks a second, each reading moto's clock once per message. In a profile
of moto during 40-instance rollouts (py-spy ``--gil``), receives held moto's GIL 44% of the time, and
every other request waited for it; the rollout benchmark's moto used 0.37 to 0.39 cores at 40
instances before, 0.29 and 0.32 after (benchmarks/RESULTS.md).

**FIFO message groups.** moto 5's long poll takes the set of message groups in flight once,
when it starts, and delivers from any group not in that set for its whole wait. Two
conductors long-polling the maintenance queue then both receive messages of the group, one
after the other's receive began: the group runs steps in parallel, every step but one loses
its conditional write and decides again, and a hand-off waited seconds for the retries. Real
SQS delivers a group's next message only once the one in flight is deleted (or its visibility
ends). Here every receive of a queue looks at the groups in flight afresh, one receive at a
time, between waits. Duplicate and parallel deliveries are still tested, on purpose: the
soak's ``duplicate-delivery`` fault and the conductor's model test.

**Deletes wake polls.** On a FIFO queue a deleted message frees its group, whose next message
SQS hands to a waiting poll at once. moto notifies only new messages, so the group's next step
(a report queued behind the step before) waited for the ``RECHECK``.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace

# The longest a waiting long poll waits without looking again (read at each wait): everything that can
# make a message deliverable wakes it sooner. The local moto server's ``--sqs-recheck`` sets it
# (``local.moto_main``), for tests that show what wakes a poll.
DEFAULT_RECHECK = 1.0
RECHECK_RANGE = (0.01, 60.0)
RECHECK = DEFAULT_RECHECK
CHANGES = "skynet_changes"  # on each queue: how many times a message there may have become deliverable


def check_recheck(seconds: float) -> float:
    """``seconds``, if in ``RECHECK_RANGE``; else ValueError (a smaller one spins, a larger one stalls
    what no notification reaches)."""
    low, high = RECHECK_RANGE
    if not low <= seconds <= high:
        raise ValueError(f"the SQS recheck must be {low} to {high} seconds, not {seconds}")
    return seconds


def set_recheck(seconds: float) -> None:
    """Make waiting long polls look again every ``seconds`` when nothing wakes them (ValueError outside the range)."""
    global RECHECK
    RECHECK = check_recheck(seconds)


def _apply(stack: ExitStack) -> None:
    from moto.sqs.models import Queue, SQSBackend

    def wait_for_messages(self: Queue, timeout: float, seen: int | None = None) -> None:
        """Wait up to ``timeout`` for a change that may make a message deliverable (none if one came after ``seen``)."""
        with self._messages_lock:
            if seen is not None and changes(self) != seen:
                return  # it changed after the poll looked, before it waited: look again
            self._messages_lock.wait(timeout=min(timeout, RECHECK, seconds_until_next_change(self)))

    turns: dict[str, threading.Lock] = {}
    turns_lock = threading.Lock()

    def receive_message(self: Any, queue_name: str, count: int, wait_seconds_timeout: int, visibility_timeout: int,
                        message_attribute_names: list[str] | None = None) -> list[Any]:
        queue = self.get_queue(queue_name)
        with turns_lock:
            turn = turns.setdefault(queue_name, threading.Lock())
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            seen = changes(queue)
            with turn:  # moto's receive with no wait looks once, at the groups in flight now
                received: list[Any] = moto_receive(self, queue_name, count, 0, visibility_timeout,
                                                   message_attribute_names)
            if received or time.monotonic() >= deadline:
                return received
            wait_for_messages(queue, max(deadline - time.monotonic(), 0), seen)

    def add_message(self: Queue, message: Any) -> None:
        moto_add(self, message)
        changed(self)

    def delete_message(self: Queue, receipt_handle: str) -> None:
        moto_delete(self, receipt_handle)
        if self.fifo_queue:  # the message's group is free: its next message may go out
            changed(self)

    def change_message_visibility(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        moto_change_visibility(self, queue_name, receipt_handle, visibility_timeout)
        changed(self.get_queue(queue_name))  # visible sooner (a message returned) than a poll computed

    replace(stack, Queue, "wait_for_messages", wait_for_messages)
    moto_receive = replace(stack, SQSBackend, "receive_message", receive_message)
    moto_delete = replace(stack, Queue, "delete_message", delete_message)
    moto_add = replace(stack, Queue, "add_message", add_message)
    moto_change_visibility = replace(stack, SQSBackend, "change_message_visibility", change_message_visibility)


def changed(queue: Any) -> None:
    """Wake the polls waiting on ``queue``: a message there may have become deliverable (counted, for a poll
    that looked just before and has not waited yet)."""
    with queue._messages_lock:
        setattr(queue, CHANGES, changes(queue) + 1)  # (an attribute of ours on moto's queue)
        queue._messages_lock.notify_all()


def changes(queue: Any) -> int:
    """How many times ``queue`` changed in a way that can make a message deliverable (under its lock)."""
    return int(getattr(queue, CHANGES, 0))


def seconds_until_next_change(queue: Any) -> float:
    """Seconds until the soonest message of ``queue`` becomes visible again or its delay ends (inf: none will).

    moto compares its clock in milliseconds (``Message.visible``: now > ``visible_at``); a millisecond
    more makes the poll look once the message is deliverable, not just before.
    """
    now = time.time() * 1000
    soonest = min((moment for message in queue._messages for moment in (message.visible_at, message.delayed_until)
                   if moment > now), default=None)
    return float("inf") if soonest is None else (soonest - now + 1) / 1000


PATCH = Patch("sqs_receive", "moto", ">=5.2,<5.3", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
