"""moto's SNS (``skynet_tasks.compat.moto_sns``): a publish to a topic with a subscription whose queue is gone.

Run on moto's own models in this process, not through a server: this tests moto, not Skynet. The "still needed"
test fails once an upgrade of moto delivers past a gone queue, and the patch can go.
"""

from __future__ import annotations

import pytest
from moto.sns.models import sns_backends
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.models import sqs_backends

from skynet_tasks.compat import moto_sns

pytestmark = pytest.mark.timeout(60)

ACCOUNT, REGION = "123456789012", "us-east-1"


def topic_with_a_gone_queue(name: str) -> tuple[object, str]:
    """A topic subscribed by two queues (raw delivery), the first of them deleted; and the one left."""
    sns, sqs = sns_backends[ACCOUNT][REGION], sqs_backends[ACCOUNT][REGION]
    topic = sns.create_topic(name)
    for queue in (f"{name}-gone", f"{name}-stays"):
        sqs.create_queue(queue)
        subscription = sns.subscribe(topic.arn, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", "sqs")
        sns.set_subscription_attributes(subscription.arn, "RawMessageDelivery", "true")
    sqs.delete_queue(f"{name}-gone")
    return topic, f"{name}-stays"


def test_still_needed_moto_fails_a_whole_publish_when_one_subscribed_queue_is_gone():
    assert not moto_sns.PATCH.installed
    topic, _ = topic_with_a_gone_queue("still-needed")
    with pytest.raises(QueueDoesNotExist):
        sns_backends[ACCOUNT][REGION].publish("hello", arn=topic.arn)


def test_with_the_patch_the_queues_still_there_get_the_message():
    topic, stays = topic_with_a_gone_queue("patched")
    with moto_sns.PATCH.applied():
        sns_backends[ACCOUNT][REGION].publish("hello", arn=topic.arn)
    assert [m.body for m in sqs_backends[ACCOUNT][REGION].get_queue(stays).messages] == ["hello"]
