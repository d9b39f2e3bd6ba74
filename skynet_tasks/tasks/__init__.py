"""Skynet's Celery tasks, one module per task (the worker imports this package to register them all).

- ``build``: a member builds a pushed commit once for the group (and ``build_request`` hands it the build);
- ``publish``: the builder offers the built release to the group, as its canary;
- ``maintenance``: one conductor step (the pure ``conductor.decide`` between a fresh read and a conditional write);
- ``take_ticket``: a member lines up in a rollout (in the worker's main process);
- ``prepare``: a member whose turn comes next starts its pool child;
- ``update``: a member updates for its ticket and reports back;
- ``re_register``: a member registers afresh and heals its group's line (boot, heartbeat, operator);
- ``drain``, ``registry_changed``: an operator's drain, and a proxy's prompt to re-render nginx;
- ``notify``: one rollout notice sent to one target (SNS, a webhook, GitHub), off the conductor's step;
- ``base``: the task class with its Context, the pool process's warm-up, posting conductor events.

Every module here depends only on modules below the package and on ``base`` (``build``
also runs ``publish``'s body); no module below the package imports it.
"""

from skynet_tasks.tasks import (  # noqa: F401 - imported to register every task with the app
    base,
    build,
    drain,
    maintenance,
    notify,
    prepare,
    publish,
    re_register,
    registry_changed,
    take_ticket,
    update,
)
