"""The env's notification topic, with IAM enforced: the stack's template deployed into moto's server, an
instance of either layer publishes a notice with its role's credentials (as its metadata endpoint gives
them), a subscriber receives it, and a role without the grant, or another topic, is refused.

The stack is ``tests/test_stack_privilege.py``'s fixture (the same deployment code, its own instance
for this module).
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from test_stack_privilege import ENV, REFUSED, stack  # noqa: F401 - the module-scoped stack fixture

from skynet_tasks.aws import aws_for
from skynet_tasks.notify.events import Notice, NoticeKind
from skynet_tasks.notify.sns import publish_notice, topic_name
from skynet_tasks.notify.targets import SnsTarget
from skynet_tasks.states import RolloutKind, RolloutState

pytestmark = pytest.mark.timeout(180)

NOTICE = Notice(NoticeKind.PUBLISHED, "r-sns", f"{ENV}-api", "9" * 40, RolloutKind.CODE, RolloutState.RUNNING,
                1700000000.0)


def subscribed_queue(stack) -> tuple[object, str]:  # noqa: F811 - the fixture's name
    """An SQS queue subscribed (raw) to the env's topic, made with the operator's administrator keys."""
    admin = aws_for(stack.operator)
    url = admin.sqs.create_queue(QueueName=f"notify-subscriber-{ENV}")["QueueUrl"]
    arn = admin.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    admin.client("sns").subscribe(TopicArn=stack.outputs["NotificationTopicArn"], Protocol="sqs", Endpoint=arn,
                                  Attributes={"RawMessageDelivery": "true"})
    return admin.sqs, url


def test_an_instance_of_either_layer_publishes_a_notice_to_the_envs_topic(stack):  # noqa: F811
    sqs, url = subscribed_queue(stack)
    assert stack.outputs["NotificationTopicArn"].endswith(f":{topic_name(ENV)}")

    for layer in ("api", "rp"):
        session = stack.instance(layer, f"i-0{layer}")
        publish_notice(stack.client(session, "sns"), stack.client(session, "sts"), SnsTarget(), ENV, NOTICE)

    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]  # type: ignore[attr-defined]
    bodies = [json.loads(m["Body"]) for m in received]
    assert len(bodies) == 2
    assert all(b["event"] == "rollout.published" and b["rollout"]["rollout_id"] == "r-sns" for b in bodies)


def test_no_role_without_the_grant_publishes_and_no_instance_publishes_elsewhere(stack):  # noqa: F811
    other = aws_for(stack.operator).client("sns").create_topic(Name="someone-elses-topic")["TopicArn"]
    session = stack.instance("api", "i-0api")
    with pytest.raises(ClientError) as refused:
        publish_notice(stack.client(session, "sns"), stack.client(session, "sts"), SnsTarget(other), ENV, NOTICE)
    assert refused.value.response["Error"]["Code"] in REFUSED

    operator = stack.assumed(f"skynet-{ENV}-operator", stack.person, "alice")
    with pytest.raises(ClientError) as refused:
        publish_notice(stack.client(operator, "sns"), stack.client(operator, "sts"), SnsTarget(), ENV, NOTICE)
    assert refused.value.response["Error"]["Code"] in REFUSED


# ---- moto's authorization of Publish (skynet_tasks/compat/moto_iam.py) -------------------------------------
def publish_request(params: dict[str, str]) -> object:
    """A moto SNS handler for one Publish, without HTTP: what its authorization reads."""
    from moto.sns.responses import SNSResponse

    handler = SNSResponse.__new__(SNSResponse)
    handler._get_action = lambda: "Publish"  # type: ignore[method-assign]
    handler._get_param = lambda name, default=None: params.get(name, default)  # type: ignore[method-assign]
    return handler


TOPIC = "arn:aws:sns:us-east-1:123456789012:skynet-prod-notifications"


def test_still_needed_moto_authorizes_publish_on_any_resource():
    from skynet_tasks.compat import moto_iam

    assert not moto_iam.RESOURCE_AUTHORIZATION.installed
    assert not hasattr(publish_request({"TopicArn": TOPIC}), "_determine_resource")  # moto checks "*"


def test_publish_is_authorized_on_its_topics_arn():
    from skynet_tasks.compat import moto_iam

    with moto_iam.RESOURCE_AUTHORIZATION.applied():
        assert publish_request({"TopicArn": TOPIC})._determine_resource() == TOPIC  # type: ignore[attr-defined]
