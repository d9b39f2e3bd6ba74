"""Names of every AWS resource Skynet uses, in one place.

Everything an env owns starts with ``skynet-<env>-`` so that IAM policies can
grant an instance its env's resources with one prefix, and so that two envs
never share a queue, table or bucket. Bucket names also carry the account id
and may be set explicitly: they are resolved in ``skynet_tasks.resources``.
"""

from __future__ import annotations

import re

# An env, layer, group or instance id becomes part of queue, table and bucket
# names, so it is restricted to what every one of those accepts.
_NAME_PART = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")

# A full commit id as git and GitHub write it: a release is named by one. The one pattern for it:
# the webhook's Lambda imports it too, and this module imports nothing a Lambda lacks.
# \A…\Z rather than ^…$, which would let a trailing newline through.
SHA = re.compile(r"\A[0-9a-f]{40}\Z")


def check_name_part(kind: str, value: str) -> str:
    """Return ``value`` if it is usable inside resource names, else raise ValueError."""
    if not isinstance(value, str) or not _NAME_PART.match(value):
        raise ValueError(
            f"{kind} {value!r} is not valid: use 1-40 lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit"
        )
    return value


def prefix(env: str) -> str:
    """The prefix of every resource name of ``env``: ``skynet-<env>-``."""
    return f"skynet-{check_name_part('env', env)}-"


def default_group(env: str, layer: str) -> str:
    """The maintenance group of a layer when no tag names another one."""
    return f"{check_name_part('env', env)}-{check_name_part('layer', layer)}"


def maintenance_queue(env: str, group: str) -> str:
    """The name of ``group``'s maintenance FIFO queue."""
    return f"{prefix(env)}{check_name_part('group', group)}-maint.fifo"


def instance_queue(env: str, instance_id: str) -> str:
    """The name of the queue of one instance's work worker."""
    return f"{prefix(env)}inst-{check_name_part('instance id', instance_id)}"


def dead_letter_queue(queue: str) -> str:
    """The dead-letter queue of ``queue`` (a FIFO queue needs a FIFO dead-letter queue)."""
    if queue.endswith(".fifo"):
        return queue[: -len(".fifo")] + "-dlq.fifo"
    return queue + "-dlq"


def endpoints_table(env: str) -> str:
    """The name of ``env``'s endpoints table."""
    return f"{prefix(env)}endpoints"


def state_table(env: str) -> str:
    """The name of ``env``'s state table (rollouts, tickets, releases)."""
    return f"{prefix(env)}state"


def config_table(env: str) -> str:
    """The name of ``env``'s config table."""
    return f"{prefix(env)}config"

