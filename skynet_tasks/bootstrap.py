"""Create, idempotently, every queue, table, bucket and topic an env needs.

On AWS the CloudFormation stack creates them; ``skynet bootstrap`` is for local
mode and for envs managed without the stack. Running it twice changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.queues import Queues, group_queues
from skynet_tasks.resources import EnvResources

log = logging.getLogger(__name__)


@dataclass
class BootstrapReport:
    """The names of the queues, tables, buckets and topics a bootstrap made sure of."""

    queues: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)


def bootstrap_env(aws: Aws, resources: EnvResources, groups: Iterable[str]) -> BootstrapReport:
    """Create the env's tables and buckets, under the names ``resources`` gives, and each group's queues and topic."""
    env = resources.env
    report = BootstrapReport()
    # (table, hash key, range key, TTL attribute): the keys the stack gives each table
    tables = ((resources.endpoints_table, "env", "layer", None), (resources.state_table, "pk", "sk", "expires_at"),
              (resources.config_table, "scope", "path", None))
    for table, hash_key, range_key, ttl in tables:
        report.tables.append(ensure_table(aws, table, hash_key, range_key, ttl))
    for bucket in (resources.config_bucket, resources.repo_bucket):
        report.buckets.append(ensure_bucket(aws, bucket))
    queues = Queues(aws.sqs)
    for group in groups:
        for spec in group_queues(env, group):
            queues.ensure(spec)
            report.queues.append(spec.name)
        # The group's broadcast (skynet_tasks.broadcast): CreateTopic returns an existing topic's ARN.
        aws.client("sns").create_topic(Name=names.members_topic(env, group))
        report.topics.append(names.members_topic(env, group))
    log.info("env %s bootstrapped: %d tables, %d buckets, %d queues", env, len(report.tables),
             len(report.buckets), len(report.queues))
    return report


def ensure_table(aws: Aws, name: str, hash_key: str, range_key: str, ttl_attribute: str | None) -> str:
    """Create the table ``name`` with these keys (and time to live) unless it exists; return its name."""
    db = aws.dynamodb
    try:
        db.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": hash_key, "AttributeType": "S"},
                                  {"AttributeName": range_key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"},
                       {"AttributeName": range_key, "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        db.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        if ttl_attribute:
            db.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": ttl_attribute})
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    return name


def ensure_bucket(aws: Aws, name: str) -> str:
    """Create the private, versioned bucket ``name`` unless this account has it; return its name."""
    s3 = aws.s3
    try:
        region = s3.meta.region_name
        if region and region != "us-east-1":
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        else:
            s3.create_bucket(Bucket=name)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name
