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
    """``skynet-<env>-``: every name of the env starts with it, and no other env's name does (``check_env``)."""
    return f"skynet-{check_env(env)}-"


def default_group(env: str, layer: str) -> str:
    """The maintenance group of a layer when no tag names another one."""
    return f"{check_env(env)}-{check_name_part('layer', layer)}"


def maintenance_queue(env: str, group: str) -> str:
    """The name of ``group``'s maintenance FIFO queue."""
    return f"{prefix(env)}{check_name_part('group', group)}-maint.fifo"


def members_topic(env: str, group: str) -> str:
    """The name of ``group``'s SNS topic, which reaches every member's queue at once (``skynet_tasks.broadcast``)."""
    return f"{prefix(env)}{check_name_part('group', group)}-members"


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


# ---- names that become paths on an instance (validation helpers) -------------------------------------
# A release's sha names its folder (``releases/<sha>``) and its download; it comes from S3 manifests and
# from messages, both untrusted, so it is checked before it is joined to any path: a full commit id
# (``SHA``), nothing else (no "/", no "..").
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")


def check_release_sha(value: object) -> str:
    """Return ``value`` if it is a full commit id (40 lowercase hex digits), else raise ValueError."""
    if not isinstance(value, str) or not SHA.match(value):
        raise ValueError(f"release sha {str(value)[:80]!r} is not a 40 digit lowercase hex commit id")
    return value


def check_sha256(value: object) -> str:
    """Return ``value`` if it is a sha256 digest in lowercase hex, else raise ValueError."""
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ValueError(f"sha256 {str(value)[:80]!r} is not 64 lowercase hex digits")
    return value


# ---- env names: no dash, so that one env's prefix is never the start of another's ---------------------
# IAM grants an instance its env's queues, tables and Auto Scaling groups as ``skynet-<env>-*``. Were
# dashes allowed, ``skynet-prod-*`` would also match every name of env ``prod-eu``
# (``skynet-prod-eu-...``): the env is followed by the first dash of the name, so it may hold none.
# The template's Env parameter has the same AllowedPattern.
_ENV = re.compile(r"^[a-z0-9]{1,40}$")


def check_env(value: str) -> str:
    """Return ``value`` if it is a valid env name (1-40 lowercase letters and digits, no dash); else ValueError."""
    if not isinstance(value, str) or not _ENV.match(value):
        raise ValueError(f"env {value!r} is not valid: use 1-40 lowercase letters and digits (no dash: env prod's "
                         "names must never match another env's, such as prod-eu's)")
    return value
