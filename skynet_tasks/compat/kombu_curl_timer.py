"""kombu's asynchronous SQS client: libcurl's timer in milliseconds, not seconds.

A Celery worker on SQS receives through kombu's ``CurlClient``, which drives a
libcurl multi handle from the worker's event loop. libcurl asks for a timer with
``CURLMOPT_TIMERFUNCTION(msecs)``: "call me back in ``msecs`` milliseconds; -1
cancels". kombu 5.7 passes ``msecs`` to ``hub.call_later``, which counts seconds,
and never cancels the previous timer (kombu pull request 2567, open). A transfer
that waits on libcurl's timer (starting a request, or reading its answer on a
reused connection) then waits 1,000 times as long: a 1 ms timer fires after 1 s.
On a worker that handles one message at a time, the receive after each task often
waits for it, so a group's conductor steps ran about once a second and every
hand-off of a rollout carried up to a second of nothing.

The patch replaces the one method, in the worker process that runs the hub.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace

_TIMER = "_skynet_curl_timer"


def set_timeout(client: Any, msecs: int) -> None:
    """libcurl's timer callback: one timer, replaced by each call, ``msecs`` in milliseconds, -1 to cancel."""
    previous = getattr(client, _TIMER, None)
    if previous is not None:
        previous.cancel()
    setattr(client, _TIMER, None if msecs < 0 else client.hub.call_later(msecs / 1000.0, client._timeout_check))


def _apply(stack: ExitStack) -> None:
    from kombu.asynchronous.http.curl import CurlClient

    replace(stack, CurlClient, "_set_timeout", set_timeout)


PATCH = Patch("curl_timer", "kombu", ">=5.7,<5.8", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
