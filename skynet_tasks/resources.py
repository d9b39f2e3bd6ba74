"""The names of one env's AWS resources, resolved in one place for every caller.

The CloudFormation stack (``cloudformation/php-nginx.yaml``) decides the names:
buckets are ``skynet-<env>-config-<account>`` and ``skynet-<env>-repo-<account>``
(S3 names are global, so they carry the account id), tables and queues are
``skynet-<env>-...`` (``skynet_tasks.names``). An instance gets its env's bucket
names from its user-data as ``SKYNET_CONFIG_BUCKET``/``SKYNET_REPO_BUCKET``; those
explicit settings win, for that env only. Anyone else (the CLI, the dashboard,
``skynet bootstrap``) derives them, asking STS for the account id: once per
resolution, and only when a bucket name is not given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.settings import Settings

# S3's rules for a bucket name, minus dots (they break virtual-host TLS, and the stack uses none).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")


class ResourceError(ValueError):
    """A resource name cannot be resolved, or a given one is not usable."""


@dataclass(frozen=True)
class EnvResources:
    """Every name of one env's buckets, tables and queues."""

    env: str
    config_bucket: str
    repo_bucket: str
    endpoints_table: str
    state_table: str
    config_table: str

    def maintenance_queue(self, group: str) -> str:
        """The FIFO queue of ``group``'s conductors."""
        return names.maintenance_queue(self.env, group)

    def instance_queue(self, instance_id: str) -> str:
        """The queue of one instance's work worker."""
        return names.instance_queue(self.env, instance_id)


def check_bucket(kind: str, value: str) -> str:
    """Return ``value`` if S3 accepts it as a bucket name, else raise ResourceError naming ``kind``."""
    if not _BUCKET.match(value) or "--" in value:
        raise ResourceError(f"{kind} bucket {value!r} is not a valid S3 bucket name: use 3-63 lowercase "
                            "letters, digits and single dashes, starting and ending with a letter or digit")
    return value


def stack_bucket(env: str, purpose: str, account_id: str) -> str:
    """The bucket the stack names ``skynet-<env>-<purpose>-<account>`` (purpose: config or repo)."""
    if not _ACCOUNT.match(account_id):
        raise ResourceError(f"account id {account_id!r} is not 12 digits")
    return check_bucket(purpose, f"{names.prefix(env)}{purpose}-{account_id}")


def account_id(aws: Aws) -> str:
    """The AWS account of this process's credentials (one STS GetCallerIdentity call)."""
    return str(aws.client("sts").get_caller_identity()["Account"])


def resolve(aws: Aws, env: str, settings: Settings | None = None) -> EnvResources:
    """The names of ``env``'s resources.

    Buckets named in ``settings`` (SKYNET_CONFIG_BUCKET, SKYNET_REPO_BUCKET) win when
    ``settings.env`` is ``env``: they are that env's buckets, never another env's.
    Any bucket still unnamed gets the stack's name, with the account id from STS.
    Raises ValueError for an invalid env and ResourceError for an unusable bucket name.
    """
    names.check_env(env)
    own = settings if settings is not None and settings.env == env else None
    config = check_bucket("config", own.config_bucket) if own and own.config_bucket else None
    repo = check_bucket("repo", own.repo_bucket) if own and own.repo_bucket else None
    if config is None or repo is None:
        account = account_id(aws)
        config = config or stack_bucket(env, "config", account)
        repo = repo or stack_bucket(env, "repo", account)
    return EnvResources(env=env, config_bucket=config, repo_bucket=repo,
                        endpoints_table=names.endpoints_table(env), state_table=names.state_table(env),
                        config_table=names.config_table(env))
