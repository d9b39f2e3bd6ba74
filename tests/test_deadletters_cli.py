"""The operator's side of dead letters, with no worker running: ``skynet dlq redrive`` when a send fails,
``skynet dlq show`` of a group without a dead-letter queue, ``skynet status`` and the dashboard when the
queues cannot be read, and a dead letter that is not a Celery message.

Against moto's server; a conductor that dead-letters and decides events is in ``test_deadletters.py``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import kombu.pools
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from deadletterkit import ENV, MEMBER, cli, env_on_moto  # noqa: F401 - the fixture env
from monitorkit import TOKEN

from skynet_tasks import names
from skynet_tasks.app import create_app
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import ensure_table
from skynet_tasks.cli import main
from skynet_tasks.conductor import Rollout, RolloutReady
from skynet_tasks.deadletters import DeadLetters, describe
from skynet_tasks.events import to_message
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import MAINTENANCE_TASK
from skynet_tasks.monitor.app import create_app as create_dashboard
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.resources import resolve
from skynet_tasks.status import UNREADABLE

pytestmark = pytest.mark.timeout(120)


class SendFailsAfter:
    """An SQS client of the moto server whose ``send_message`` is refused after ``allowed`` sends."""

    def __init__(self, sqs: Any, allowed: int) -> None:
        self.sqs, self.allowed = sqs, allowed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)

    def send_message(self, **request: Any) -> Any:
        if self.allowed <= 0:
            raise ClientError({"Error": {"Code": "RequestThrottled", "Message": "slow down"}}, "SendMessage")
        self.allowed -= 1
        return self.sqs.send_message(**request)


def test_a_redrive_whose_send_fails_leaves_that_letter_and_the_ones_after_it_in_order(env, monkeypatch):
    # Given three dead letters of one message group, in order
    dlq_url = env.aws.sqs.get_queue_url(QueueName=env.dead_letter_queue)["QueueUrl"]
    for n in (1, 2, 3):
        body, dedup = to_message(RolloutReady(Rollout(id=f"r-{n}", group=env.group, release="f" * 40,
                                                      canary=MEMBER, update_timeout=60)))
        env.aws.sqs.send_message(QueueUrl=dlq_url, MessageGroupId=env.group, MessageDeduplicationId=dedup,
                                 MessageBody=json.dumps({"body": json.dumps([[], {"group": env.group,
                                                                                   "event": body}, {}]),
                                                         "headers": {"task": MAINTENANCE_TASK}}))

    # When the redrive's second send is refused
    failing = DeadLetters(SendFailsAfter(env.aws.sqs, allowed=1), ENV)
    monkeypatch.setattr(sys.modules["skynet_tasks.cli.dlq"], "_dead_letters", lambda env_name: failing)
    result = CliRunner().invoke(main, ["dlq", "redrive", env.group, "--json"], catch_exceptions=False)

    # Then the first went back, the command says which one failed and exits 1, and the rest wait in order
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert [r["rollout_id"] for r in answer["redriven"]] == ["r-1"]
    assert [(f["rollout_id"], "slow down" in f["error"]) for f in answer["failed"]] == [("r-2", True)]
    assert env.depth(env.queue) == 1
    assert [d.rollout_id for d in DeadLetters(env.aws.sqs, ENV).show(env.group)] == ["r-2", "r-3"]


def test_dlq_show_of_a_group_without_a_dead_letter_queue_says_so(env):
    # Given a group whose maintenance queue was made without a redrive policy (by hand)
    env.aws.sqs.create_queue(QueueName=names.maintenance_queue(ENV, "bare"), Attributes={"FifoQueue": "true"})

    # When the operator asks for its dead letters, then the answer says why there are none to show
    result = CliRunner().invoke(main, ["dlq", "show", "bare"])
    assert result.exit_code == 1
    assert "has no dead-letter queue (no redrive policy)" in result.output
    # and a group with an empty one has none
    assert cli("dlq", "show", env.group) == f"group {env.group}: no dead letters\n"


def test_status_and_dashboard_say_when_the_dead_letter_queues_cannot_be_read_and_show_the_rest(monkeypatch):
    # Given an SQS that refuses every request (throttled past the client's retries), and DynamoDB well
    server = MotoServer.start(faults="throttle=1:sqs")
    try:
        aws = aws_for(server.environment())
        resources = resolve(aws, ENV)
        for table, hash_key, range_key, ttl in ((resources.endpoints_table, "env", "layer", None),
                                                (resources.state_table, "pk", "sk", "expires_at")):
            ensure_table(aws, table, hash_key, range_key, ttl)
        Ledger(aws.dynamodb, resources.state_table).ensure_group("local-api", "/srv/app.git", "main")
        for key, value in {**server.environment(), "SKYNET_ENV": ENV, "AWS_MAX_ATTEMPTS": "1"}.items():
            monkeypatch.setenv(key, value)

        # When the operator asks for the status
        shown = cli("status")

        # Then it says the dead letters are unknown, and still shows the groups; so does the dashboard
        assert shown.splitlines()[0] == UNREADABLE
        assert "group local-api" in shown
        kombu.pools.reset()
        dashboard = create_dashboard(resources, aws, create_app(), Auth(TOKEN), max_age=60.0).test_client()
        page = dashboard.get("/groups").get_data(as_text=True)
        assert "Dead-letter queues could not be read" in page and 'id="group-local-api"' in page
    finally:
        server.stop()


def test_a_dead_letter_whose_body_is_not_a_celery_message_is_still_described():
    # A body that is not kombu's envelope (sent by hand, or truncated) is shown, not an error
    letter = describe({"MessageId": "m-1", "Body": "not json {",
                       "Attributes": {"MessageGroupId": "g", "SentTimestamp": "1700000000000",
                                      "ApproximateReceiveCount": "6"}})
    assert (letter.task, letter.kind, letter.rollout_id, letter.message_group, letter.sent_at,
            letter.receive_count) == (None, None, None, "g", 1700000000.0, 6)
