"""The env's SNS topic: each notice published as JSON, for whatever subscribes (mail, chat, a pager).

The topic is the stack's (``skynet-<env>-notifications``, cloudformation/php-nginx.yaml), and each
instance role may publish to that topic and no other. Its ARN is built from the caller's own
account and partition (STS) and the client's region, unless the config names one.
"""

from __future__ import annotations

import json
from typing import Any

from skynet_tasks import names
from skynet_tasks.notify.events import Notice
from skynet_tasks.notify.targets import SnsTarget

TOPIC_SUFFIX = "notifications"


def topic_name(env: str) -> str:
    """The env's notification topic, as the stack names it."""
    return f"{names.prefix(env)}{TOPIC_SUFFIX}"


def topic_arn(sns: Any, sts: Any, env: str) -> str:
    """The ARN of ``env``'s topic, in the caller's account, partition and the client's region."""
    caller = str(sts.get_caller_identity()["Arn"])  # arn:<partition>:sts::<account>:...
    partition, account = caller.split(":")[1], caller.split(":")[4]
    return f"arn:{partition}:sns:{sns.meta.region_name}:{account}:{topic_name(env)}"


def publish_notice(sns: Any, sts: Any, target: SnsTarget, env: str, notice: Notice) -> str:
    """Publish ``notice`` to the target's topic; the message id SNS gives it."""
    arn = target.topic_arn or topic_arn(sns, sts, env)
    subject = f"Skynet {notice.group}: rollout {notice.rollout_id} {notice.kind}"[:100]
    message = json.dumps({"event": f"rollout.{notice.kind}", "delivery": notice.key, "env": env,
                          "rollout": notice.to_message()}, sort_keys=True)
    answer = sns.publish(TopicArn=arn, Subject=subject, Message=message, MessageAttributes={
        "event": {"DataType": "String", "StringValue": f"rollout.{notice.kind}"},
        "group": {"DataType": "String", "StringValue": notice.group}})
    return str(answer["MessageId"])
