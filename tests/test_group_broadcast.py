"""A rollout tells its members to take a ticket in one SNS publish (``skynet_tasks.broadcast``), on moto's server
over HTTP: a member that subscribed its queue at boot hears it; one that cannot (its queue made by an older agent,
no topic for its group) is told with a message of its own; the canary hears it and asks for nothing; a queue that
is gone neither stops the publish nor outlives ``skynet queues prune``. (An older agent's queue, whose policy an
instance's role may not set, is tested under the stack's IAM: tests/test_stack_broadcast.py.)"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ledgerkit import bootstrapped_moto, instance_context

from skynet_tasks import broadcast, names
from skynet_tasks.app import configure
from skynet_tasks.aws import Aws
from skynet_tasks.conductor import Rollout, RolloutReady
from skynet_tasks.context import Context
from skynet_tasks.events import to_message
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import TAKE_TICKET_TASK, NoBroadcast
from skynet_tasks.queue_prune import prune_subscriptions
from skynet_tasks.queues import Queues, instance_queue
from skynet_tasks.registry import Endpoint
from skynet_tasks.states import RolloutKind
from skynet_tasks.tasks.maintenance import handle_maintenance
from skynet_tasks.tasks.take_ticket import handle_take_ticket

pytestmark = pytest.mark.timeout(120)

GROUP = "local-api"
TOPICLESS = "local-tagged"  # a group named by a tag: no topic


@pytest.fixture(scope="module")
def local_env() -> Iterator[tuple[MotoServer, Aws]]:
    with bootstrapped_moto([GROUP]) as started:
        yield started


def member(local_env: tuple[MotoServer, Aws], root: Any, instance: str, group: str = GROUP) -> Context:
    return instance_context(*local_env, root / instance, instance, group)


def register(ctx: Context, hears: bool) -> None:
    ctx.registry.register("local", "api", Endpoint(ctx.settings.instance_id, ctx.settings.group, "10.0.0.1", 8080,
                                                   "", "healthy", time.time(), hears_group=hears))


def envelopes(ctx: Context, instance: str) -> list[dict[str, Any]]:
    """The kombu envelopes waiting in ``instance``'s queue (taken off it): a broadcast's body is the envelope's
    JSON as SNS delivered it raw, a message sent to the queue is that JSON base64-encoded."""
    url = ctx.aws.sqs.get_queue_url(QueueName=names.instance_queue("local", instance))["QueueUrl"]
    found = []
    while got := ctx.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        for message in got:
            body = message["Body"]
            found.append(json.loads(body if body.startswith("{") else base64.b64decode(body)))
            ctx.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def kwargs_of(envelope: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(envelope["body"]))[1])


def via(envelope: dict[str, Any]) -> str:
    """The exchange a message came through: the group's topic for a broadcast, "" for a message to the queue."""
    return str(envelope["properties"]["delivery_info"]["exchange"])


def test_one_publish_tells_every_member_that_hears_and_a_message_each_to_the_others(local_env, tmp_path):
    canary, hearing, deaf = member(local_env, tmp_path, "b-0"), member(local_env, tmp_path, "b-1"), \
        member(local_env, tmp_path, "b-2")
    joined = {ctx.settings.instance_id: broadcast.join(ctx) for ctx in (canary, hearing)}
    Queues(deaf.aws.sqs).ensure(instance_queue("local", "b-2"))  # an older agent's queue: no policy, no subscription
    register(canary, True), register(hearing, True), register(deaf, False)
    topic = joined["b-0"].topic
    assert topic == broadcast.arns(canary.aws).of("sns", "skynet-local-local-api-members")
    assert all(j.hears for j in joined.values()) and broadcast.hears_group(hearing.layout.run_dir)
    configure(canary.messenger.app, canary.settings, topic)  # as the worker is configured at boot

    canary.ledger.create_rollout("r-b", GROUP, "s1", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-b", group=GROUP, release="s1", canary="b-0", update_timeout=60))
    handle_maintenance(canary, GROUP, to_message(ready)[0])

    told = {instance: envelopes(canary, instance) for instance in ("b-0", "b-1", "b-2")}
    assert [(e["headers"]["task"], via(e), kwargs_of(e)) for e in told["b-1"]] == [
        (TAKE_TICKET_TASK, "skynet-local-local-api-members", {"rollout_id": "r-b", "canary": "b-0"})]
    assert [(via(e), kwargs_of(e)) for e in told["b-2"]] == [("", {"rollout_id": "r-b"})]
    to_canary = [e for e in told["b-0"] if e["headers"]["task"] == TAKE_TICKET_TASK]  # (beside its update)
    assert [via(e) for e in to_canary] == ["skynet-local-local-api-members"]  # the canary hears it too...
    handle_take_ticket(canary, **kwargs_of(to_canary[0]))  # ... and asks for no ticket: it holds ticket 1
    handle_take_ticket(hearing, **kwargs_of(told["b-1"][0]))
    maintenance = canary.aws.sqs.get_queue_url(QueueName=names.maintenance_queue("local", GROUP))["QueueUrl"]
    asked = canary.aws.sqs.receive_message(QueueUrl=maintenance, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert ["b-1" in m["Body"] or "b-1" in base64.b64decode(m["Body"]).decode() for m in asked["Messages"]] == [True]


def test_a_group_without_a_topic_is_told_one_message_each(local_env, tmp_path):
    ctx = member(local_env, tmp_path, "t-0", TOPICLESS)
    Queues(ctx.aws.sqs).ensure(instance_queue("local", "t-1"))

    assert broadcast.join(ctx) == broadcast.Joined(None, False)
    configure(ctx.messenger.app, ctx.settings, None)
    ctx.ledger.ensure_group(TOPICLESS, "repo", "main")
    ctx.ledger.create_rollout("r-t", TOPICLESS, "s1", RolloutKind.CODE, {})
    register(ctx, False)
    ready = RolloutReady(Rollout(id="r-t", group=TOPICLESS, release="s1", canary="t-0", update_timeout=60))
    other = member(local_env, tmp_path, "t-1", TOPICLESS)
    register(other, False)
    handle_maintenance(ctx, TOPICLESS, to_message(ready)[0])

    assert [(via(e), kwargs_of(e)) for e in envelopes(ctx, "t-1")] == [("", {"rollout_id": "r-t"})]


def test_a_gone_queue_neither_stops_a_publish_nor_outlives_the_prune(local_env, tmp_path):
    stays, goes = member(local_env, tmp_path, "g-0"), member(local_env, tmp_path, "g-1")
    topic = broadcast.join(stays).topic
    broadcast.join(goes)
    Queues(goes.aws.sqs).delete(names.instance_queue("local", "g-1"))
    sns = stays.aws.client("sns")

    sns.publish(TopicArn=topic, Message=json.dumps({"probe": 1}))

    assert len(envelopes(stays, "g-0")) == 1
    assert "skynet-local-inst-g-1" in prune_subscriptions(stays.aws, Queues(stays.aws.sqs), "local")
    endpoints = [s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]]
    assert any(e.endswith(":skynet-local-inst-g-0") for e in endpoints)
    assert not any(e.endswith(":skynet-local-inst-g-1") for e in endpoints)


def test_an_instance_that_boots_while_the_prune_runs_keeps_its_subscription(local_env, tmp_path):
    pruner = member(local_env, tmp_path, "r-0")
    topic = broadcast.join(pruner).topic

    def queues_listed_as_one_boots() -> set[str]:
        broadcast.join(member(local_env, tmp_path, "r-1"))  # its queue, then its subscription, mid-prune
        return set(Queues(pruner.aws.sqs).list("skynet-local-"))

    broadcast.forget_gone_queues(pruner.aws, "local", queues_listed_as_one_boots)

    endpoints = [s["Endpoint"] for s in pruner.aws.client("sns").list_subscriptions_by_topic(TopicArn=topic)[
        "Subscriptions"]]
    assert any(e.endswith(":skynet-local-inst-r-1") for e in endpoints)


def test_a_conductor_that_knows_no_topic_tells_every_member_on_its_own(local_env, tmp_path):
    # Its members hear the topic, but this process was started without it (STS or SNS refused it at boot):
    # kombu would drop a fan-out it was not configured for without a word.
    conductor, hearing = member(local_env, tmp_path, "n-0"), member(local_env, tmp_path, "n-1")
    broadcast.join(conductor), broadcast.join(hearing)
    register(conductor, True), register(hearing, True)
    configure(conductor.messenger.app, conductor.settings, None)
    with pytest.raises(NoBroadcast):
        conductor.messenger.to_members(GROUP, TAKE_TICKET_TASK, {"rollout_id": "r-n"})

    conductor.ledger.create_rollout("r-n", GROUP, "s1", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-n", group=GROUP, release="s1", canary="n-0", update_timeout=60))
    handle_maintenance(conductor, GROUP, to_message(ready)[0])

    assert [(via(e), kwargs_of(e)) for e in envelopes(conductor, "n-1")] == [("", {"rollout_id": "r-n"})]
