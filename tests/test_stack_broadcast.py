"""The group's broadcast under the stack's IAM, in moto (``skynet_tasks.broadcast``): an instance subscribes its own
queue to its group's topic and publishes there, with its role's credentials as at boot; it may not publish to the
other layer's topic, subscribe there or unsubscribe anyone; a queue an older agent made hears nothing and says so.
The stack is deployed as ``tests/test_stack_privilege.py`` deploys it (its fixture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_stack_privilege import ENV, REFUSED, outcome, stack  # noqa: F401 - ``stack`` is the module's fixture

from skynet_tasks import broadcast, names
from skynet_tasks.app import create_app
from skynet_tasks.aws import Aws
from skynet_tasks.context import Context
from skynet_tasks.queues import Queues, instance_queue
from skynet_tasks.settings import Settings

pytestmark = pytest.mark.timeout(180)


def booting(stack: Any, layer: str, instance: str, root: Path) -> Context:  # noqa: F811
    """The Context an instance of ``layer`` builds at boot, with its role's credentials."""
    settings = Settings.from_env({"SKYNET_ENV": ENV, "SKYNET_LAYER": layer, "SKYNET_INSTANCE_ID": instance,
                                  "SKYNET_ROOT": str(root / "root"), "SKYNET_CONFIG_DIR": str(root / "config"),
                                  "SKYNET_CONFIG_BUCKET": stack.config_bucket, "SKYNET_REPO_BUCKET": stack.repo_bucket})
    aws = Aws(stack.instance(layer, instance), endpoint_url=stack.server.endpoint)
    return Context.create(settings, create_app(settings), aws)


@pytest.mark.parametrize("layer", ["api", "rp"])
def test_an_instance_subscribes_its_queue_to_its_groups_topic_and_may_publish_only_there(stack, layer, tmp_path):  # noqa: F811
    ctx = booting(stack, layer, f"i-0b{layer}", tmp_path)

    joined = broadcast.join(ctx)

    own = broadcast.arns(ctx.aws).of("sns", names.members_topic(ENV, f"{ENV}-{layer}"))
    other = broadcast.arns(ctx.aws).of("sns", names.members_topic(ENV, f"{ENV}-{'rp' if layer == 'api' else 'api'}"))
    assert joined == broadcast.Joined(own, True)
    sns = ctx.aws.client("sns")
    assert outcome(sns.publish, TopicArn=own, Message="{}") == "allowed"
    assert outcome(sns.publish, TopicArn=other, Message="{}") in REFUSED
    queue = broadcast.arns(ctx.aws).of("sqs", names.instance_queue(ENV, f"i-0b{layer}"))
    assert outcome(sns.subscribe, TopicArn=other, Protocol="sqs", Endpoint=queue) in REFUSED
    arn = sns.subscribe(TopicArn=own, Protocol="sqs", Endpoint=queue,
                        Attributes={"RawMessageDelivery": "true"})["SubscriptionArn"]  # the same subscription again
    assert outcome(sns.unsubscribe, SubscriptionArn=arn) in REFUSED


def test_a_queue_an_older_agent_made_hears_nothing_and_the_instance_says_so(stack, tmp_path):  # noqa: F811
    ctx = booting(stack, "api", "i-0bold", tmp_path)
    Queues(ctx.aws.sqs).ensure(instance_queue(ENV, "i-0bold"))  # as agents before the broadcast made it

    joined = broadcast.join(ctx)

    assert joined.topic is not None and not joined.hears  # its role may not give the queue the topic's policy
    assert not broadcast.hears_group(ctx.layout.run_dir)
