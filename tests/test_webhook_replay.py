"""Replayed pushes: GitHub signs only the body, so a captured push can be sent again under a fresh delivery id.

The receiver runs as ``skynet webhook serve`` in its own process in front of moto's server, as in
test_webhook.py. A push is claimed once (its repository, ref, before, after and GitHub's
``pushed_at``), whatever its delivery id; a push of a commit the group built before the release it
runs is answered 202 "older than the running release" and starts nothing, unless it was forced.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import pytest

from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.deploys import StartedBuild
from skynet_tasks.ledger import Ledger, Release
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import BUILD_REQUEST_TASK
from skynet_tasks.resources import resolve
from skynet_tasks.states import ReleaseState
from skynet_tasks.webhook.deliveries import DeliveryLedger
from skynet_tasks.webhook.local import push_payload, send_webhook, start_local_receiver
from skynet_tasks.webhook.receiver import Receiver
from skynet_tasks.webhook.routing import Route
from skynet_tasks.webhook.signature import sign

pytestmark = pytest.mark.timeout(120)

GROUP = "local-api"
BEFORE = "2" * 40


class Hook:
    def __init__(self, url: str, secret: bytes, sqs, ledger: Ledger) -> None:
        self.url, self.secret, self.sqs, self.ledger = url, secret, sqs, ledger
        self.queue_url = sqs.get_queue_url(QueueName=names.maintenance_queue("local", GROUP))["QueueUrl"]

    def send(self, payload: dict, delivery: str | None = None) -> tuple[int, dict]:
        return send_webhook(self.url, self.secret, "push", payload, delivery=delivery)

    def builds(self) -> list[dict]:
        """The build requests waiting in the group's maintenance queue (taken off it)."""
        found = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                return found
            for message in got["Messages"]:
                envelope = json.loads(base64.b64decode(message["Body"]))
                assert envelope["headers"]["task"] == BUILD_REQUEST_TASK
                body = envelope["body"]
                if envelope.get("properties", {}).get("body_encoding") == "base64":
                    body = base64.b64decode(body)
                found.append(json.loads(body)[1]["request"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def rollouts(self) -> list[str]:
        return self.ledger.recent_rollouts(GROUP, 100)

    def running(self, older: str, newer: str) -> None:
        """The group built ``older``, then ``newer``, and runs ``newer``."""
        started = time.time() - 3600
        for sha in (older, newer):
            started += 60
            assert self.ledger.claim_build(Release(group=GROUP, sha=sha, state=ReleaseState.BUILDING, builder="b",
                                                   started_at=started), lease=60) is not None
            self.ledger.finish_build(GROUP, sha, "b", ReleaseState.BUILT, {"sha256": "0" * 64, "size": 1})
        self.ledger.db.update_item(TableName=self.ledger.table, Key={"pk": {"S": f"group#{GROUP}"},
                                                                     "sk": {"S": "group"}},
                                   UpdateExpression="SET desired_release = :d", ExpressionAttributeValues={
                                       ":d": {"S": newer}})


@pytest.fixture(scope="module")
def hook(tmp_path_factory):
    directory = tmp_path_factory.mktemp("webhook-replay")
    server = MotoServer.start()
    aws = aws_for(server.environment())
    resources = resolve(aws, "local")
    bootstrap_env(aws, resources, [GROUP])
    repo = directory / "repos" / "sample-app.git"
    ledger = Ledger(aws.dynamodb, resources.state_table)
    ledger.ensure_group(GROUP, str(repo), "main")
    receiver = start_local_receiver(directory, server.environment(), repo)
    yield Hook(receiver.url, Path(receiver.secret_file).read_bytes().strip(), aws.sqs, ledger)
    os.killpg(receiver.pid, 15)
    server.stop()


def test_the_same_push_under_a_fresh_delivery_id_starts_nothing_and_says_it_was_received(hook):
    # Given a push that started its build
    payload = push_payload("sample-app", "main", BEFORE, "a1" * 20)
    status, first = hook.send(payload, delivery="first-delivery")
    assert status == 202 and len(first["builds"]) == 1
    rollouts = hook.rollouts()

    # When its signed body is sent again with a delivery id never seen (a replay)
    status, again = hook.send(payload, delivery="replayed-delivery")

    # Then it is accepted, says it was received before, and starts nothing
    assert status == 202 and again["duplicate"] is True
    assert "already received" in again["ignored"] and "first-delivery" in again["ignored"]
    assert again["builds"] == first["builds"]  # the rollout the push started, named again
    assert [request["sha"] for request in hook.builds()] == ["a1" * 20]
    assert hook.rollouts() == rollouts
    # and the replay's own redelivery gets the same answer
    assert hook.send(payload, delivery="replayed-delivery") == (202, {**again, "duplicate": True})


def test_ten_deliveries_of_one_push_under_ten_ids_at_once_start_one_build(hook):
    payload = push_payload("sample-app", "main", BEFORE, "a2" * 20)
    answers: list[tuple[int, dict]] = []

    def deliver(number: int) -> None:
        answers.append(hook.send(payload, delivery=f"at-once-{number}"))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(answers) == 10 and all(status == 202 for status, _ in answers)
    assert len(hook.builds()) == 1
    assert sum(1 for _, answer in answers if "duplicate" not in answer) == 1


def test_a_push_of_a_commit_older_than_the_running_release_starts_no_rollout(hook):
    # Given a group that built OLD, then NEW, and runs NEW
    old, new = "b1" * 20, "b2" * 20
    hook.running(old, new)
    rollouts = hook.rollouts()

    # When OLD's push, captured days ago (its claim has expired), is sent again with a fresh delivery id
    status, answer = hook.send(push_payload("sample-app", "main", BEFORE, old, pushed_at=1_700_000_000))

    # Then it is accepted and says why nothing starts: no build request, no rollout
    assert status == 202
    assert answer["ignored"] == "older than the running release" and answer["older"] == [GROUP]
    assert answer["builds"] == []
    assert hook.builds() == []
    assert hook.rollouts() == rollouts


def test_a_push_of_a_commit_the_group_never_built_is_built_whatever_it_runs(hook):
    hook.running("c1" * 20, "c2" * 20)

    status, answer = hook.send(push_payload("sample-app", "main", "c2" * 20, "c3" * 20))

    assert status == 202 and [b["release"] for b in answer["builds"]] == ["c3" * 20]
    assert [request["sha"] for request in hook.builds()] == ["c3" * 20]


def test_a_forced_push_back_to_an_older_release_is_built_and_its_rollout_says_forced(hook):
    # Given a group that runs NEW, after OLD, whose push was received before
    old, new = "d1" * 20, "d2" * 20
    hook.send(push_payload("sample-app", "main", BEFORE, old), delivery="old-push")
    hook.builds()
    hook.running(old, new)

    # When the branch is forced back from NEW to OLD
    forced = push_payload("sample-app", "main", new, old, forced=True)
    status, answer = hook.send(forced, delivery="forced-back")

    # Then OLD is built again (not taken for the earlier push), and both the request and the rollout say forced
    assert status == 202 and answer["forced"] is True and "duplicate" not in answer
    [request] = hook.builds()
    assert request["sha"] == old and request["forced"] is True
    assert hook.ledger.rollout_item(answer["builds"][0]["rollout_id"])["forced"] is True
    # and the forced push itself, replayed, starts nothing
    status, again = hook.send(forced, delivery="forced-back-replayed")
    assert status == 202 and "already received" in again["ignored"]
    assert hook.builds() == []


@pytest.mark.parametrize(("field", "value", "error"), [
    ("forced", "yes", "forced must be true or false"),
    ("before", "HEAD~1", "before must be a full commit id"),
    ("before", None, "before must be a full commit id"),
])
def test_a_push_whose_forced_or_before_is_malformed_is_a_400_and_starts_nothing(hook, field, value, error):
    payload = {**push_payload("sample-app", "main", BEFORE, "e1" * 20), field: value}

    status, answer = hook.send(payload)

    assert (status, answer) == (400, {"error": error})
    assert hook.builds() == []


def test_a_push_whose_build_could_not_be_enqueued_is_not_taken_for_a_replay_when_it_comes_again(hook):
    # Given a receiver whose first attempt to enqueue fails (SQS unreachable), its claims in the state table
    attempts: list[str] = []

    def start_build(route: Route, sha: str, forced: bool) -> StartedBuild:
        attempts.append(sha)
        if len(attempts) == 1:
            raise ConnectionError("SQS unreachable")
        return StartedBuild(route.group, sha, "r-second-try")

    receiver = Receiver(b"s", [Route("sample-app", "main", "local", "api", GROUP)], start_build,
                        DeliveryLedger(hook.ledger.db, hook.ledger.table), lambda route, sha: False)
    body = json.dumps(push_payload("sample-app", "main", BEFORE, "f1" * 20)).encode()

    def deliver(delivery: str):
        return receiver.handle({"content-type": "application/json", "x-github-event": "push",
                                "x-github-delivery": delivery, "x-hub-signature-256": sign(b"s", body)}, body)

    # When it answers 503, and GitHub's hook is redelivered (the operator pressed "Redeliver": a new id)
    failed, redelivered = deliver("fails-once"), deliver("redelivered")

    # Then the push was claimed by neither attempt's failure: the second one builds
    assert failed.status == 503
    assert redelivered.status == 202 and redelivered.body["builds"][0]["rollout_id"] == "r-second-try"
    assert attempts == ["f1" * 20, "f1" * 20]
