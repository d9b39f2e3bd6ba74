"""A group's broadcast: one SNS publish that reaches the queue of every member.

When a rollout starts, every member of its group is told to take a ticket. Told one by one, that was
one SQS send per member from the conductor, in a row, while the canary updated and the line should
have been forming: two seconds for 40 members on a busy machine, and on AWS some 20 ms a member,
half a minute for 1,000. Each group has an SNS topic (``skynet-<env>-<group>-members``, made by the
stack or by ``skynet bootstrap``); each member subscribes its own queue at boot, with raw delivery,
and the conductor publishes once (kombu's SNS fan-out: ``Messenger.to_members``).

A member whose queue the topic cannot reach registers so (``Endpoint.hears_group`` false), and the
conductor sends it its own message as before. That is a queue made by an agent older than the
broadcast: it lacks the policy that lets the topic deliver, and an instance's role may not change a
queue's policy (the instance's successor makes a queue of its own). It is also a group without a topic
(a group named by a tag rather than by the stack), or SNS refusing the subscription.

Trusted: the topic and the queue, by their names (the env's prefix, which IAM grants) and by IAM:
only the group's members may publish to its topic, and the queue's policy lets only that topic in.
A broadcast is a task message like any other, and the task validates its arguments the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.queues import QueueSpec, instance_queue
from skynet_tasks.resources import account_id
from skynet_tasks.settings import Settings

if TYPE_CHECKING:  # the Context holds a Registry, whose registration imports this module
    from skynet_tasks.context import Context

log = logging.getLogger(__name__)

# Written in the run directory while this instance's queue hears its group's topic: the registration
# (main process and pool child alike) says so in the registry entry.
HEARS_GROUP_FILE = "hears-group"


@dataclass(frozen=True)
class Arns:
    """Where this process's AWS resources live: ARNs are built from it, with no call per resource."""

    partition: str
    region: str
    account: str

    def of(self, service: str, name: str) -> str:
        """The ARN of the resource ``name`` of ``service`` (an SNS topic, an SQS queue) in this account and region."""
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{name}"


def arns(aws: Aws) -> Arns:
    """This process's partition, region and account: the account from STS (``resources.account_id``: IAM
    allows every caller GetCallerIdentity), the region from the SQS client's configuration."""
    region = aws.sqs.meta.region_name
    return Arns(aws.session.get_partition_for_region(region), region, account_id(aws))


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    """The queue policy that lets ``topic_arn`` (and nothing else) deliver to ``queue_arn``."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "GroupBroadcast", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}, separators=(",", ":"))


def lets_in(policy: str | None, topic_arn: str) -> bool:
    """True if the queue policy ``policy`` (its JSON, as SQS returns it) lets ``topic_arn`` send."""
    try:
        statements = json.loads(policy or "{}").get("Statement") or []
    except (ValueError, AttributeError):
        return False
    statements = statements if isinstance(statements, list) else [statements]
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        condition = json.dumps(statement.get("Condition") or {})
        if topic_arn in condition and "sns.amazonaws.com" in json.dumps(statement.get("Principal")):
            return True
    return False


def own_queue(env: str, instance_id: str, topic: str, where: Arns) -> QueueSpec:
    """This instance's queue, with the policy that lets its group's topic (``topic``, an ARN) deliver to it."""
    spec = instance_queue(env, instance_id)
    return QueueSpec(spec.name, spec.visibility_timeout, policy=queue_policy(where.of("sqs", spec.name), topic))


@dataclass(frozen=True)
class Joined:
    """What a boot made of the group's broadcast: the topic to publish to, and whether this queue hears it."""

    topic: str | None  # None: the group has no topic (or SNS refused): the conductor sends one by one
    hears: bool


def join(ctx: Context) -> Joined:
    """Create this instance's queue and subscribe it to its group's topic; say so in the run directory.

    Never fails the boot: without the broadcast, the instance is told as before, one message for it.
    """
    s = ctx.settings
    marker = ctx.layout.run_dir / HEARS_GROUP_FILE
    marker.unlink(missing_ok=True)
    try:
        where = arns(ctx.aws)
    except (ClientError, BotoCoreError) as error:
        log.warning("the group's broadcast is off (no account id from STS): %s", error)
        ctx.queues.ensure(instance_queue(s.env, s.instance_id))
        return Joined(None, False)
    topic = where.of("sns", names.members_topic(s.env, s.group))
    spec = own_queue(s.env, s.instance_id, topic, where)
    url = ctx.queues.ensure(spec)
    try:
        ctx.aws.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=where.of("sqs", spec.name),
                                        Attributes={"RawMessageDelivery": "true"})
    except (ClientError, BotoCoreError) as error:
        log.warning("not subscribed to group %s's topic %s: told one message at a time (%s)", s.group, topic, error)
        return Joined(None, False)
    attributes = ctx.aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
    if not lets_in(attributes.get("Policy"), topic):
        log.warning("queue %s does not let group %s's topic deliver (made by an older agent, and this role may not "
                    "change its policy): told one message at a time", spec.name, s.group)
        return Joined(topic, False)
    ctx.layout.run_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(topic + "\n")
    log.info("queue %s hears group %s's broadcasts", spec.name, s.group)
    return Joined(topic, True)


def group_topic(aws: Aws, settings: Settings) -> str | None:
    """The ARN of ``settings.group``'s topic, for a process that publishes and has no queue to subscribe (a
    conductor run as a worker of its own); None if STS cannot say the account."""
    try:
        return arns(aws).of("sns", names.members_topic(settings.env, settings.group))
    except (ClientError, BotoCoreError) as error:
        log.warning("the group's broadcast is off (no account id from STS): %s", error)
        return None


def hears_group(run_dir: Path) -> bool:
    """True while this instance's queue hears its group's topic (``join`` said so at boot)."""
    return bool((run_dir / HEARS_GROUP_FILE).exists())


def forget_gone_queues(aws: Aws, env: str, existing_queues: Callable[[], set[str]]) -> list[str]:
    """Unsubscribe, from ``env``'s group topics, every queue that is gone: not among ``existing_queues()``, which
    is asked after the subscriptions are listed (an instance makes its queue before it subscribes it, so a
    booting instance is never taken for a gone one). Returns the queue names unsubscribed. With an
    administrator's credentials (``skynet queues prune``): an instance may not unsubscribe anyone."""
    sns = aws.client("sns")
    prefix = names.prefix(env)
    subscriptions = []
    for page in sns.get_paginator("list_topics").paginate():
        for topic in (t["TopicArn"] for t in page.get("Topics", [])):
            name = topic.rsplit(":", 1)[-1]
            if name.startswith(prefix) and name.endswith("-members"):
                for listing in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
                    subscriptions += [s for s in listing.get("Subscriptions", []) if s.get("Protocol") == "sqs"]
    existing, gone = existing_queues(), []
    for subscription in subscriptions:
        queue = str(subscription.get("Endpoint", "")).rsplit(":", 1)[-1]
        if queue.startswith(prefix) and queue not in existing:
            sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
            gone.append(queue)
    return sorted(gone)
