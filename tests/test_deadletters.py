"""No maintenance event is lost: a step that keeps failing ends in the group's dead-letter queue, where
``skynet status``, the dashboard and the metrics show it and ``skynet dlq redrive`` sends it back.

A real conductor worker (``skynet worker --role conductor``, Celery on kombu's SQS transport) consumes
the group's maintenance queue on moto's server, so what is acknowledged, rejected and redelivered is
what a worker does. The test's queue has a visibility timeout of one second (the stack's is 20 s),
so five receives take seconds rather than minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kombu.pools
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from monitorkit import TOKEN

from skynet_tasks import names
from skynet_tasks.app import create_app
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env, ensure_table
from skynet_tasks.cli import main
from skynet_tasks.conductor import Rollout, RolloutReady
from skynet_tasks.deadletters import DeadLetters, describe
from skynet_tasks.events import to_message
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import MAINTENANCE_TASK, Messenger
from skynet_tasks.monitor.app import create_app as create_dashboard
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.queues import MAX_RECEIVES, Queues
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.states import RolloutKind
from skynet_tasks.status import UNREADABLE
from skynet_tasks.taskruns import TaskRuns

pytestmark = pytest.mark.timeout(120)

ENV = "local"
MEMBER = "dlq-a"
VISIBILITY = 1  # seconds: the test queue's visibility timeout


class Env:
    """One env on a moto server: its clients, the group's queue names, and a conductor worker on demand."""

    def __init__(self, server: MotoServer, group: str, tmp: Path) -> None:
        self.server, self.group, self.tmp = server, group, tmp
        self.environment = {**server.environment(), "SKYNET_ENV": ENV}
        self.aws: Aws = aws_for(self.environment)
        self.resources = resolve(self.aws, ENV)
        bootstrap_env(self.aws, self.resources, [group])
        self.queue = names.maintenance_queue(ENV, group)
        self.dead_letter_queue = names.dead_letter_queue(self.queue)
        url = self.aws.sqs.get_queue_url(QueueName=self.queue)["QueueUrl"]
        self.aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(VISIBILITY)})
        self.ledger = Ledger(self.aws.dynamodb, self.resources.state_table)
        Registry(self.aws.dynamodb, self.resources.endpoints_table).register(
            ENV, "api", Endpoint(MEMBER, group, "127.0.0.1", 9000, "old", "healthy", time.time()))
        self.worker: subprocess.Popen[str] | None = None

    def start_conductor(self) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SKYNET_")}
        environment.update(self.environment, SKYNET_INSTANCE_ID=MEMBER, SKYNET_GROUP=self.group,
                           SKYNET_ROOT=str(self.tmp / MEMBER), SKYNET_POLL_WAIT="1", PYTHONPATH=os.getcwd())
        self.worker = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "skynet_tasks.cli", "worker", "--role", "conductor", "--loglevel", "INFO"],
            env=environment, stdout=open(self.tmp / "conductor.log", "w"), stderr=subprocess.STDOUT, text=True)

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()

    def messenger(self) -> Messenger:
        kombu.pools.reset()  # no pooled connection to another test's server
        os.environ.update(self.environment)
        return Messenger(create_app(), ENV)

    def depth(self, queue: str) -> int:
        return sum(Queues(self.aws.sqs).depth(queue).values())

    def maintenance_runs(self) -> list[Any]:
        return [run for run in TaskRuns(self.aws.dynamodb, self.resources.state_table).recent(MEMBER, 50)
                if run.task == MAINTENANCE_TASK]

    def log(self) -> str:
        return (self.tmp / "conductor.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    saved = dict(os.environ)
    server = MotoServer.start()
    found = Env(server, "local-api", tmp_path)
    os.environ.update(found.environment)  # for the CLI, as an operator's shell would have it
    try:
        yield found
    finally:
        found.stop()
        kombu.pools.reset()
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def wait_for(what: str, check: Callable[[], Any], env: Env, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f}s; conductor log:\n{env.log()}")


def ready(env: Env, rollout_id: str) -> None:
    """Post the rollout-ready event of ``rollout_id`` (canary: the member) as a builder does."""
    body, dedup = to_message(RolloutReady(Rollout(id=rollout_id, group=env.group, release="f" * 40,
                                                  canary=MEMBER, update_timeout=60)))
    env.messenger().maintenance(env.group, body, dedup)


def canary_updating(env: Env, rollout_id: str) -> bool:
    rollout = env.ledger.load_group(env.group).rollout(rollout_id)
    ticket = rollout.ticket_of(MEMBER) if rollout is not None else None
    return ticket is not None and str(ticket.state) == "updating"


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_step_that_succeeds_is_acknowledged_once(env):
    # Given a conductor and a rollout waiting for its first step
    env.ledger.create_rollout("r-ok", env.group, "f" * 40, RolloutKind.CODE, {})
    env.start_conductor()

    # When its rollout-ready event is decided
    ready(env, "r-ok")
    wait_for("the canary's ticket updating", lambda: canary_updating(env, "r-ok"), env)

    # Then the message is gone and never comes back: one run, well past several visibility timeouts
    time.sleep(4 * VISIBILITY + 2)
    assert len(env.maintenance_runs()) == 1
    assert env.depth(env.queue) == 0
    assert env.depth(env.dead_letter_queue) == 0


def test_an_event_that_keeps_failing_is_dead_lettered_shown_everywhere_and_decided_after_a_redrive(env):
    # Given a conductor whose every step fails (the state table is gone: an outage, or a bug)
    env.aws.dynamodb.delete_table(TableName=env.resources.state_table)
    env.start_conductor()

    # When a rollout-ready event reaches the group's maintenance queue
    ready(env, "r-dead")

    # Then it is received again after each failure, and past the limit SQS moves it to the dead-letter queue
    wait_for("the event in the dead-letter queue", lambda: env.depth(env.dead_letter_queue) == 1, env)
    assert env.depth(env.queue) == 0

    # Once the table is back, it shows in `skynet dlq show`, without being consumed
    ensure_table(env.aws, env.resources.state_table, "pk", "sk", "expires_at")
    shown = json.loads(cli("dlq", "show", env.group, "--json"))
    assert [(s["kind"], s["rollout_id"], s["message_group"]) for s in shown] == [
        ("rollout_ready", "r-dead", env.group)]
    assert shown[0]["receive_count"] > MAX_RECEIVES  # received past the limit: never acknowledged early
    assert time.time() - 60 < shown[0]["sent_at"] <= time.time()
    assert env.depth(env.dead_letter_queue) == 1

    # ... in `skynet status`
    assert f"ALARM: group {env.group} has 1 dead letter in {env.dead_letter_queue}" in cli("status")
    status = json.loads(cli("status", "--json"))
    assert {"group": env.group, "queue": env.dead_letter_queue, "messages": 1} in status["dead_letters"]

    # ... on the dashboard's pages, in its API and in its metrics
    dashboard = create_dashboard(env.resources, env.aws, env.messenger().app, Auth(TOKEN), max_age=60.0)
    client = dashboard.test_client()
    page = client.get("/groups").get_data(as_text=True)
    assert 'class="alarm"' in page and f"skynet dlq show {env.group}" in page
    assert 'class="alarm"' in client.get("/queues?partial=1").get_data(as_text=True)  # the live refresh too
    api = client.get("/api/status").get_json()
    assert {"group": env.group, "queue": env.dead_letter_queue, "messages": 1} in api["dead_letters"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'skynet_dead_letters{{env="local",group="{env.group}",queue="{env.dead_letter_queue}"}} 1.0' in metrics

    # When the operator redrives it, the rollout now existing
    env.ledger.create_rollout("r-dead", env.group, "f" * 40, RolloutKind.CODE, {})
    redriven = json.loads(cli("dlq", "redrive", env.group, "--json"))

    # Then it left the dead-letter queue, and the conductor decided it: the canary's number came up
    assert [r["rollout_id"] for r in redriven["redriven"]] == ["r-dead"] and redriven["failed"] == []
    wait_for("the canary's ticket updating", lambda: canary_updating(env, "r-dead"), env)
    assert env.depth(env.dead_letter_queue) == 0
    # (the dashboard reads queue depths at most every 30 s: its banner clears at the next read, 30 s on)
    cache = dashboard.extensions["skynet_monitor"].queue_cache
    cache.clock = lambda: time.monotonic() + cache.ttl
    assert 'class="alarm"' not in client.get("/groups").get_data(as_text=True)
    assert "ALARM" not in cli("status")


def test_a_step_killed_at_its_hard_time_limit_is_not_acknowledged_and_comes_back(tmp_path):
    # Given a DynamoDB whose transactions take 3 s, and a step allowed 1 s
    saved = dict(os.environ)
    server = MotoServer.start(faults="conflicts=3000")
    env = Env(server, "local-api", tmp_path)
    try:
        env.ledger.create_rollout("r-slow", env.group, "f" * 40, RolloutKind.CODE, {})
        env.start_conductor()
        body, dedup = to_message(RolloutReady(Rollout(id="r-slow", group=env.group, release="f" * 40,
                                                      canary=MEMBER, update_timeout=60)))
        env.messenger().app.send_task(MAINTENANCE_TASK, kwargs={"group": env.group, "event": body},
                                      queue=env.queue, MessageGroupId=env.group, MessageDeduplicationId=dedup,
                                      time_limit=1, soft_time_limit=1)

        # When its step is killed at the limit, Then its message was not acknowledged: it is received again
        # (and decided then: the killed step's transaction itself may have landed meanwhile, as on AWS,
        # which makes the second step find it done; a step that keeps failing is dead-lettered, above)
        def came_back() -> bool:
            log = (env.tmp / "conductor.log").read_text(errors="replace")
            killed = log.find("Hard time limit (1s) exceeded")
            return killed >= 0 and "Task skynet.maintenance[" in log[killed:] and " received" in log[killed:]

        wait_for("the killed step's message to come back", came_back, env, timeout=60)
    finally:
        env.stop()
        kombu.pools.reset()
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def test_a_malformed_event_is_dead_lettered_not_retried_for_ever(env):
    # Given a conductor, and an event no Skynet version knows (as a newer version's would look)
    env.start_conductor()

    # When it reaches the group's maintenance queue
    env.messenger().maintenance(env.group, {"type": "from-the-future", "rollout_id": "r-new"}, "future-1")

    # Then every member that receives it refuses it, and after the limit it waits in the dead-letter queue
    wait_for("the event in the dead-letter queue", lambda: env.depth(env.dead_letter_queue) == 1, env)
    assert env.depth(env.queue) == 0
    letters = DeadLetters(env.aws.sqs, ENV).show(env.group)
    assert [(d.kind, d.rollout_id, d.task) for d in letters] == [("from-the-future", "r-new", MAINTENANCE_TASK)]
    assert "BadEvent" in env.log()


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
