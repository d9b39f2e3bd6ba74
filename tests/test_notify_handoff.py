"""The notify task and the conductor's step: the task retried with backoff until the HTTPS webhook accepts,
and the step handing its notices off to the instance's own queue, so that a receiver that is down, a
broken notification config or a failing observer never holds up nor undoes a decision.

AWS is a moto server (the step's ledger, the instance's own queue the notices go to, the task runs'
table), as in production code paths; the receiver is ``notifykit``'s. What a receiver sees of one
delivery is ``test_notify_webhook.py``'s.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clusterkit import sender_for
from ledgerkit import bootstrapped_moto
from notifykit import GROUP, NOTICE, SHA, notify_config, receiver_fixture, tls_fixture  # noqa: F401 - fixtures

from skynet_tasks import names
from skynet_tasks.app import app, configure
from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.context import Context
from skynet_tasks.events import to_message
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.notify.delivery import deliver
from skynet_tasks.notify.handoff import NOTIFY_TASK
from skynet_tasks.notify.targets import CONFIG_FILE
from skynet_tasks.notify.transport import NotifyRetry
from skynet_tasks.notify.webhook import DELIVERY_HEADER
from skynet_tasks.registry import Endpoint
from skynet_tasks.settings import Settings
from skynet_tasks.states import RolloutKind, RolloutState
from skynet_tasks.step import decide_and_write_until_settled
from skynet_tasks.tasks import notify  # noqa: F401 - registers the task
from skynet_tasks.tasks.base import SkynetTask
from skynet_tasks.tasks.maintenance import handle_maintenance

pytestmark = pytest.mark.timeout(90)

ME = "api-1"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hanging() -> Iterator[str]:
    """The URL of a receiver that takes connections and never answers (a sender waits for its timeout)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"https://127.0.0.1:{listener.getsockname()[1]}/hooks/skynet"


# ---- the task: retried with backoff, in the worker ---------------------------------------------------------
@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[MotoServer, Any]]:
    with bootstrapped_moto([GROUP]) as started:
        yield started


@pytest.fixture
def ctx(moto, tmp_path) -> Iterator[Context]:
    server, aws = moto
    settings = Settings.from_env({"SKYNET_ENV": "local", "SKYNET_INSTANCE_ID": ME,
                                  "SKYNET_ROOT": str(tmp_path / "root"),
                                  "SKYNET_CONFIG_DIR": str(tmp_path / "config")})
    found = Context.create(settings, sender_for({**server.environment(), "SKYNET_ENV": "local"}).app, aws)
    configure(app, settings)  # as the worker does at its start: the tasks' own app
    SkynetTask.adopt(found)
    yield found
    SkynetTask.adopt(None)  # type: ignore[arg-type]


def test_the_task_retries_with_growing_backoff_until_the_receiver_accepts(ctx, receiver, tls, monkeypatch):
    notify_config(ctx.settings.config_dir, receiver.url, tls[0])
    receiver.failures = 2
    countdowns: list[float] = []
    task = app.tasks[NOTIFY_TASK]
    retry = task.retry

    def recording_retry(*args: Any, **kwargs: Any) -> Any:
        countdowns.append(kwargs["countdown"])
        return retry(*args, **kwargs)

    monkeypatch.setattr(task, "retry", recording_retry)

    result = task.apply(kwargs={"target": "webhook", "notice": NOTICE.to_message()})

    assert result.successful() and result.result is True
    assert len(receiver.requests) == 3  # failed twice, then accepted
    assert len({body for _, body in receiver.requests}) == 1  # every attempt the same body ...
    assert len({headers[DELIVERY_HEADER.lower()] for headers, _ in receiver.requests}) == 1  # ... and delivery id
    # Celery's exponential backoff (jittered: anywhere up to 2 s, then up to 4 s), never past its maximum.
    assert len(countdowns) == 2 and 0 <= countdowns[0] <= 2 and 0 <= countdowns[1] <= 4


def instance_queue_tasks(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    """The (task, kwargs) of every message waiting on this instance's own queue (received, then left to return)."""
    sqs = ctx.aws.sqs
    url = sqs.get_queue_url(QueueName=names.instance_queue("local", ME))["QueueUrl"]
    found: list[tuple[str, dict[str, Any]]] = []
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                       VisibilityTimeout=60).get("Messages", [])
        if not messages and found:
            break
        for message in messages:
            envelope = json.loads(base64.b64decode(message["Body"]))
            _, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
            found.append((envelope["headers"]["task"], kwargs))
    return found


# ---- the conductor's step: notices handed off, never waited on ----------------------------------------------
def test_a_step_hands_its_notices_to_its_own_queue_and_a_receiver_down_changes_nothing(ctx, hanging):
    # Given a webhook and a GitHub API that never answer (a step that waited would wait 5 s per notice and target)
    notify_config(ctx.settings.config_dir, hanging, None, github=hanging)
    for member in ("a", ME):
        ctx.registry.register("local", "api", Endpoint(member, GROUP, "10.0.0.1", 8080, "old", "healthy", time.time()))
    ctx.ledger.create_rollout("r-down", GROUP, SHA, RolloutKind.CODE, {})

    # When the rollout runs its canary (ME) and the other member to the end
    started = time.monotonic()
    for event in (RolloutReady(Rollout(id="r-down", group=GROUP, release=SHA, canary=ME, update_timeout=60)),
                  TicketTaken("r-down", "a"), UpdateReported("r-down", 1, ME, ok=True),
                  UpdateReported("r-down", 2, "a", ok=True)):
        handle_maintenance(ctx, GROUP, to_message(event)[0])
    elapsed = time.monotonic() - started

    # Then every decision is written, as fast as steps go (nothing waited on the receiver) ...
    rollout = ctx.ledger.load_rollout("r-down")
    assert rollout is not None and rollout.state is RolloutState.COMPLETED
    assert elapsed < 15, f"four steps took {elapsed:.1f} s"  # six sends in place would take 30 s
    # ... and the notices wait on the instance's own queue, for its worker's pool, in order
    told = [(kw["target"], kw["notice"]["kind"]) for task, kw in instance_queue_tasks(ctx) if task == NOTIFY_TASK]
    assert told == [(target, kind) for kind in ("started", "published", "completed")
                    for target in ("webhook", "github")]
    # A notice whose receiver is down is retried later: the rollout is not touched
    notify_config(ctx.settings.config_dir, f"https://127.0.0.1:{closed_port()}/hooks/skynet", None)
    with pytest.raises(NotifyRetry, match="Connection refused"):
        deliver(ctx.settings.config_dir, "local", ctx.aws, "webhook", NOTICE)
    assert ctx.ledger.load_rollout("r-down") == rollout


def test_a_broken_notification_config_never_fails_a_step(ctx, caplog):
    ctx.settings.config_dir.mkdir(parents=True, exist_ok=True)
    (ctx.settings.config_dir / CONFIG_FILE).write_text('{"webhook": {"url": "http://example.com/"}}')  # not https
    ctx.ledger.create_rollout("r-bad", GROUP, SHA, RolloutKind.CODE, {})

    decision = handle_maintenance(ctx, GROUP, to_message(RolloutReady(Rollout(
        id="r-bad", group=GROUP, release=SHA, canary=None, update_timeout=60)))[0])

    assert decision is not None and decision.changed
    assert ctx.ledger.load_rollout("r-bad").state is RolloutState.RUNNING  # type: ignore[union-attr]
    assert "notices not handed off" in caplog.text and "plain http" in caplog.text


def test_an_observer_of_the_step_that_fails_never_undoes_the_decision_and_a_redelivery_tells_nothing(ctx):
    ctx.ledger.create_rollout("r-obs", GROUP, SHA, RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-obs", group=GROUP, release=SHA, canary=None, update_timeout=60))
    seen: list[str] = []

    def failing(before: Any, decision: Any) -> None:
        seen.append("told")
        raise RuntimeError("notifier exploded")

    decision = decide_and_write_until_settled(ctx.ledger, GROUP, ready, (ME,), after_write=failing)
    again = decide_and_write_until_settled(ctx.ledger, GROUP, ready, (ME,), after_write=failing)

    assert decision.changed and not again.changed and seen == ["told"]  # told once, for the write only
    assert ctx.ledger.load_rollout("r-obs").state is RolloutState.RUNNING  # type: ignore[union-attr]
