"""A conductor step's hard time limit, kept in whatever thread the step runs.

The conductor runs its steps on a thread of its own (workers/conductor.py), where SIGALRM, which
only ever interrupts the main thread, cannot reach. Here a watchdog thread raises StepTimeout in
the step's thread once the limit passes (CPython's ``PyThreadState_SetAsyncExc``: raised at the
step's next Python instruction, as a signal handler's exception would be). A step blocked inside
one call (a socket read: botocore's read timeout bounds it) gets it when the call returns; a step
still running ``grace`` seconds after its limit is stuck beyond that, and the watchdog hands it to
``on_stuck``, by default a warm shutdown of the worker: an update in hand still finishes and
reports, the service manager (systemd's ``Restart=always``) starts the worker again, and SQS hands
the step's unacknowledged message out again after its visibility timeout.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

STUCK_GRACE = 30.0  # botocore's read timeout (skynet_tasks.aws): a step blocked in one call has returned by then


class StepTimeout(BaseException):
    """A conductor step ran past its task's hard time limit.

    A BaseException, as KeyboardInterrupt is: a step's own ``except Exception`` (a heartbeat's, a
    library's retry loop) must not swallow it and carry on past the limit.
    """


def stop_the_worker(seconds: float) -> None:
    """Ask the worker for a warm shutdown: a conductor step is stuck past its hard limit and its grace."""
    log.critical("a conductor step is still running %g s past its hard time limit: stopping the worker, to be"
                 " restarted by its service manager; SQS hands the step's message out again", seconds)
    os.kill(os.getpid(), signal.SIGTERM)


def _raise_in(thread_id: int, error: type[BaseException] | None) -> None:
    # ``None`` clears an exception set earlier and not raised yet.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(error) if error else None)


@contextmanager
def hard_limit(seconds: float | None, on_stuck: Callable[[float], None] = stop_the_worker,
               grace: float = STUCK_GRACE) -> Iterator[None]:
    """Stop the block with StepTimeout once it has run ``seconds`` (no limit for None or 0), in any thread.

    If the block still runs ``grace`` seconds after its limit, ``on_stuck(seconds + grace)`` is called
    (from the watchdog's thread). StepTimeout is raised out of the block only while it runs: never
    after it returned.
    """
    if not seconds:
        yield
        return
    thread_id, lock, done = threading.get_ident(), threading.Lock(), threading.Event()
    fired = threading.Event()

    def watch() -> None:
        if done.wait(seconds):
            return
        with lock:  # the block cannot finish between this check and the raise
            if done.is_set():
                return
            fired.set()
            _raise_in(thread_id, StepTimeout)
        if not done.wait(grace):
            on_stuck(seconds + grace)

    threading.Thread(target=watch, name="conductor-step-limit", daemon=True).start()
    try:
        yield
    finally:
        # The one StepTimeout the watchdog may raise lands only where the interpreter checks for it (a
        # call, a jump back): in this loop it is caught, and ``done`` is still set, or the watchdog would
        # take a step that ended for a stuck one.
        while True:
            try:
                with lock:
                    done.set()
                    if fired.is_set():
                        _raise_in(thread_id, None)  # not raised yet: it must never be raised after the block
                break
            except StepTimeout:
                continue
    if fired.is_set():  # the block ended normally, just as its limit passed: it still ran past it
        raise StepTimeout(f"conductor step ran past its hard time limit of {seconds:g} s")
