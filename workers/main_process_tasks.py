"""Tasks the worker runs in its main process, on its event loop, instead of handing them to its pool child.

A rollout's start tells every member to take a ticket (``skynet.take_ticket``): one SQS send. Run
in the pool, it started every member's child at once (a fork, then its AWS clients: a few tenths
of a second of CPU each), all while the canary updated: on 2 cores and 20 instances each member
took 3 to 4 s to ask, the canary's update 5 s instead of 1, and the first hand-off 1.5 s. The
main process has all the task needs already (the heartbeat's Context), so the request goes out at
once, and no child starts until the member has work that needs one: its update, and
``skynet.prepare`` just before it (``tasks.maintenance``).

An operator's drain (``skynet.drain``) runs here too: the instance reports itself draining at once,
instead of after its child starts, while a heartbeat wrote the entry back to healthy.

What runs here must be short and bounded, since it holds the event loop and no hard time limit
covers it: a ticket request is one read at most and one send, each with botocore's timeouts; a drain
is a file and one registry write (an undrain probes the app first, as every heartbeat here does). A
message with an ETA (a countdown) waits on the worker's timer, as Celery's own strategy makes it
wait (the prefetch window widened meanwhile, so the update can still arrive), then runs here too.
The message is acknowledged as the task's settings say (``Request.execute``), as in the pool.

Celery's extension point for this is the task's ``Strategy``, set by ``run_here_too`` at the
worker's start; Celery 5.7's own strategy (``celery.worker.strategy.default``) is what it follows,
minus the pool: no reservation (which would make the autoscaler start the child) and no callbacks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery
from celery.utils.imports import symbol_by_name
from celery.utils.time import timezone
from celery.worker.request import create_request_cls
from celery.worker.strategy import hybrid_to_proto2, proto1_to_proto2
from kombu.asynchronous.timer import to_timestamp

STRATEGY = f"{__name__}:run_here"

__all__ = ["STRATEGY", "run_here", "run_here_too"]


def run_here_too(app: Celery, names: Iterable[str]) -> None:
    """Run the tasks ``names`` in the worker's main process (set before the worker starts its consumer)."""
    for name in names:
        app.tasks[name].Strategy = STRATEGY


def run_here(task: Any, app: Celery, consumer: Any, **_: Any) -> Any:
    """The message handler of ``task``: each request executes in this process, now or at its ETA."""
    request_class = create_request_cls(symbol_by_name(task.Request), task, consumer.pool, consumer.hostname,
                                       consumer.event_dispatcher, app=app)

    def handle(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **__: Any) -> None:
        if body is None and "args" not in message.payload:
            body, headers, decoded, utc = message.body, message.headers, False, app.uses_utc_timezone()
        elif "args" in message.payload:
            body, headers, decoded, utc = hybrid_to_proto2(message, message.payload)
        else:
            body, headers, decoded, utc = proto1_to_proto2(message, body)
        request = request_class(message, on_ack=ack, on_reject=reject, app=app, hostname=consumer.hostname,
                                eventer=consumer.event_dispatcher, task=task,
                                connection_errors=consumer.connection_errors, body=body, headers=headers,
                                decoded=decoded, utc=utc)
        if (request.expires or request.id in consumer.controller.state.revoked) and request.revoked():
            return
        if not request.eta:
            request.execute()
            return
        eta = to_timestamp(timezone.to_system(request.eta)) if request.utc \
            else to_timestamp(request.eta, app.timezone)
        consumer.qos.increment_eventually()

        def at_eta() -> None:
            try:
                request.execute()
            finally:
                consumer.qos.decrement_eventually()

        consumer.timer.call_at(eta, at_eta, priority=6)

    return handle
