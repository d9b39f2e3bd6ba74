"""``python -m skynet_tasks.local.moto_main``: moto's server, with its SQS long poll made to wait.

moto 5's ``ReceiveMessage`` long poll waits with ``Condition.wait_for(lambda:
queue.messages)``, which returns at once while *any* message is visible. On a FIFO
queue whose message group is in flight, the waiting messages are visible but not
deliverable, so every long poll on the group's queue spins at 100% of a core for its
whole wait (``tests/test_motoserver.py`` shows it). Skynet's conductors long-poll the
maintenance FIFO while one of them holds the group, so on a small machine moto starved
everything else and a hand-off took seconds. Real SQS holds such a poll idle.

The fix here waits on the queue's condition instead, woken by a new message and
re-checking at least every ``RECHECK`` seconds (a visibility timeout ending or a
group being freed do not notify). Nothing else of moto changes.
"""

from __future__ import annotations

RECHECK = 0.1


def patch_long_poll() -> None:
    from moto.sqs.models import Queue

    def wait_for_messages(self: Queue, timeout: int) -> None:
        with self._messages_lock:
            self._messages_lock.wait(timeout=min(timeout, RECHECK))

    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def main() -> None:
    patch_long_poll()
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()
