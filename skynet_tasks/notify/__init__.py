"""Telling people about rollouts: what happened to a rollout (``events``), where to tell it (``targets``),
and one sender per kind of target (``sns``, ``webhook``, ``github``).

The conductor's step derives the notices from its decision (pure), and hands them to its own
instance's queue (``handoff``) without waiting: the ``skynet.notify`` task sends them from the
worker's pool child, each target on its own, retried with backoff. A notifier that fails never
changes a rollout's outcome and never holds up the conductor.
"""
