"""kombu's SQS consumer on Celery's event loop: receive again as soon as a task is acknowledged.

kombu's SQS channel starts a receive only while its prefetch slot is free. While the
worker holds a message, the channel's check (``_schedule_queue``) finds it cannot
consume and schedules itself again with ``hub.call_soon``, from the loop's own thread,
which does not wake the loop: the check runs again only once ``poll`` returns. That is
what keeps it from spinning while a task runs.

Celery acknowledges a finished task (``acks_late``) with ``call_soon`` too, so the check
and the acknowledgement run in one batch of the loop's ready callbacks, in a set's
order. When the check runs first, it schedules itself once more, the acknowledgement
frees the slot, and the loop then sleeps in ``poll`` until a socket or a timer wakes it:
a second, or more. The worker starts its next receive that much after its task, and a
message sent meanwhile waits: conductor steps that had just run were each followed by
up to a second of deafness, and a rollout's hand-off waited 0.3 to 1 s whenever its
report met only such conductors (seen in the rollout benchmark's traces, 2026-11-26).

The patch makes an acknowledgement or rejection on a channel with an event loop wake
that loop once, so that the pending check runs at once. A wake costs one loop iteration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace


def wake(hub: Any) -> None:
    """Make the loop's next ``poll`` return at once (as ``call_soon`` from another thread does)."""
    waker = getattr(hub, "_waker", None)
    if waker is not None:
        waker.wake()


def _waking(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def settle(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            if self.hub is not None:
                wake(self.hub)

    return settle


def _apply(stack: ExitStack) -> None:
    from kombu.transport.SQS import Channel

    for name in ("basic_ack", "basic_reject"):
        replace(stack, Channel, name, _waking(getattr(Channel, name)))


PATCH = Patch("ack_wake", "kombu", ">=5.7,<5.8", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
