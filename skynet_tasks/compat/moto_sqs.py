"""moto's SQS receive: a long poll that waits idle, and FIFO message groups exclusive under long polling.

**Long poll.** moto 5's ``ReceiveMessage`` long poll waits with ``Condition.wait_for(lambda:
queue.messages)``, which returns at once while *any* message is visible. On a FIFO queue
whose message group is in flight, the waiting messages are visible but not deliverable, so
every long poll on the group's queue spins at 100% of a core for its whole wait. Skynet's
conductors long-poll the maintenance FIFO while one of them holds the group, so on a small
machine moto starved everything else and a hand-off took seconds. Real SQS holds such a poll
idle. Here a poll waits on the queue's condition, woken by a new message and re-checking at
least every ``RECHECK`` seconds (a visibility timeout ending does not notify).

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

# How often a waiting long poll looks again without being woken (read at each wait): the local
# moto server's ``--sqs-recheck`` sets it (``local.moto_main``), for tests that show what wakes a poll.
DEFAULT_RECHECK = 0.1
RECHECK_RANGE = (0.01, 60.0)
RECHECK = DEFAULT_RECHECK


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

    def wait_for_messages(self: Queue, timeout: int) -> None:
        with self._messages_lock:
            self._messages_lock.wait(timeout=min(timeout, RECHECK))

    turns: dict[str, threading.Lock] = {}
    turns_lock = threading.Lock()

    def receive_message(self: Any, queue_name: str, count: int, wait_seconds_timeout: int, visibility_timeout: int,
                        message_attribute_names: list[str] | None = None) -> list[Any]:
        queue = self.get_queue(queue_name)
        with turns_lock:
            turn = turns.setdefault(queue_name, threading.Lock())
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with turn:  # moto's receive with no wait looks once, at the groups in flight now
                received: list[Any] = moto_receive(self, queue_name, count, 0, visibility_timeout,
                                                   message_attribute_names)
            if received or time.monotonic() >= deadline:
                return received
            queue.wait_for_messages(max(deadline - time.monotonic(), 0))

    def delete_message(self: Queue, receipt_handle: str) -> None:
        moto_delete(self, receipt_handle)
        if self.fifo_queue:
            with self._messages_lock:
                self._messages_lock.notify_all()

    replace(stack, Queue, "wait_for_messages", wait_for_messages)
    moto_receive = replace(stack, SQSBackend, "receive_message", receive_message)
    moto_delete = replace(stack, Queue, "delete_message", delete_message)


PATCH = Patch("sqs_receive", "moto", ">=5.2,<5.3", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
