"""An update's report: when it reaches the conductor, the ticket says reported and the instance is back in the registry.

Both writes are the report's own latency (the next instance's turn waits for them), so they are one
transaction across the state and endpoints tables; when that is refused they are made apart, and the
report still goes out. The update runs through ``handle_update`` on moto's server, its installer replaced.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ledgerkit import bootstrapped_moto, instance_context

from skynet_tasks import registration
from skynet_tasks.aws import Aws
from skynet_tasks.buildrequest import new_rollout_id
from skynet_tasks.conductor import Decision, Group, Rollout, Ticket, UpdateReported
from skynet_tasks.context import Context
from skynet_tasks.installer import UpdateFailed
from skynet_tasks.ledger.table import key, rollout_pk, ticket_sk
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.states import Health, RolloutKind, RolloutState, TicketState
from skynet_tasks.tasks import update as update_task

pytestmark = pytest.mark.timeout(120)

GROUP = "local-api"
ME = "api-1"


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[MotoServer, Aws]]:
    with bootstrapped_moto([GROUP]) as started:
        yield started


@pytest.fixture
def ctx(moto, tmp_path) -> Context:
    return instance_context(*moto, tmp_path, ME)


class Reports:
    """Stands in for deciding the report (``tasks.report``): records what its step and the proxies would read."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.seen: list[dict[str, Any]] = []
        self.calls: list[str] = []  # the DynamoDB calls the test records (``record_dynamodb_calls``)
        self.calls_before_report: list[str] = []
        self.sent_at = 0.0

    def send(self, ctx: Context, event: Any) -> None:
        assert isinstance(event, UpdateReported)
        self.sent_at = time.monotonic()
        self.calls_before_report = list(self.calls)
        entry = next((e for e in self.ctx.registry.endpoints("local", "api") if e.instance_id == ME), None)
        self.seen.append({"event": event, "ticket": self.ctx.ledger.ticket(event.rollout_id, event.ticket) or {},
                          "entry": entry})


def updating_ticket(ctx: Context) -> str:
    """A rollout whose ticket 1 is updating on this instance; its id."""
    # A group of its own per test: each starts from an empty line on the module's moto server.
    rollout_id, now, group = new_rollout_id(), time.time(), f"group-{secrets.token_hex(4)}"
    rollout = Rollout(rollout_id, group, "c" * 40, state=RolloutState.RUNNING, created_at=now, canary=ME,
                      tickets=(Ticket(1, ME, TicketState.UPDATING, now, now, deadline=now + 300),))
    ctx.ledger.write_decision(Group(group), Decision(Group(group, line=(rollout,)), touched=(rollout,)))
    return rollout_id


def run_update(ctx: Context, monkeypatch: pytest.MonkeyPatch, during: Any = None) -> Reports:
    """Run ticket 1's update, its installer doing ``during`` (or nothing); the reports it sent."""
    reports = Reports(ctx)

    def install(*_: object) -> str:
        if during is not None:
            during()
        return "installed\n"

    monkeypatch.setitem(update_task.UPDATERS, RolloutKind.CODE, install)
    monkeypatch.setattr(update_task, "report_update", reports.send)
    return reports


def record_dynamodb_calls(ctx: Context, calls: list[str]) -> None:
    """Append to ``calls`` each DynamoDB operation ``ctx`` sends from now on."""
    ctx.aws.dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))


def test_the_report_goes_out_after_its_ticket_is_marked_reported_and_the_instance_registered(ctx, monkeypatch):
    # Given ticket 1 updating on this instance
    rollout_id = updating_ticket(ctx)
    reports = run_update(ctx, monkeypatch, during=lambda: record_dynamodb_calls(ctx, reports.calls))

    # When its update succeeds
    update_task.handle_update(ctx, rollout_id, 1)

    # Then one report went out, and when it did the ticket was marked reported and the entry refreshed
    [report] = reports.seen
    assert report["event"].ok and report["ticket"]["reported_attempt"] == 1
    assert report["ticket"]["reported_at"] == report["event"].reported_at
    assert report["entry"] is not None and report["entry"].last_task == f"update {rollout_id}#1"
    assert report["entry"].last_outcome == "ok"
    # And both writes were one round trip: the report waits for nothing else of DynamoDB's
    assert reports.calls_before_report == ["TransactWriteItems"]


def test_the_proxies_are_told_after_the_report_that_the_instance_is_back(ctx, monkeypatch):
    # Given ticket 1 updating on this instance, out of the proxies while it updates
    rollout_id = updating_ticket(ctx)
    reports = run_update(ctx, monkeypatch)
    told: list[float] = []
    monkeypatch.setattr(update_task, "tell_proxies", lambda _ctx: told.append(time.monotonic()))

    # When its update succeeds
    update_task.handle_update(ctx, rollout_id, 1)

    # Then the proxies were told once, after the report (which waits for nothing it does not need)
    assert len(reports.seen) == 1 and len(told) == 1
    assert reports.sent_at <= told[0]


def test_a_duplicate_update_message_after_the_report_runs_nothing(ctx, monkeypatch):
    # Given ticket 1 updated and reported
    rollout_id = updating_ticket(ctx)
    reports = run_update(ctx, monkeypatch)
    update_task.handle_update(ctx, rollout_id, 1)

    # When the update message comes again (a duplicate, a redelivery)
    update_task.handle_update(ctx, rollout_id, 1)

    # Then it is ignored: no second update, no second report
    assert len(reports.seen) == 1


def test_without_the_layers_registry_item_the_writes_are_made_apart_before_the_report(ctx, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger=update_task.__name__)
    # Given ticket 1 updating, and the layer's registry item gone while it updates (pruned, deleted by hand):
    # the transaction's write of the entry is refused
    rollout_id = updating_ticket(ctx)
    table = ctx.registry.table
    reports = run_update(ctx, monkeypatch, during=lambda: ctx.aws.dynamodb.delete_item(
        TableName=table, Key={"env": {"S": "local"}, "layer": {"S": "api"}}))

    # When its update succeeds
    update_task.handle_update(ctx, rollout_id, 1)

    # Then the report still went out after both writes, made apart
    assert "not made in one transaction" in caplog.text
    [report] = reports.seen
    assert report["ticket"]["reported_attempt"] == 1
    assert report["entry"] is not None and report["entry"].last_task == f"update {rollout_id}#1"


def test_a_ticket_gone_still_reports_and_registers(ctx, monkeypatch, caplog):
    # Given ticket 1 updating, and its item deleted while it updates (by hand: the annotation's condition fails)
    rollout_id = updating_ticket(ctx)
    item_key = key(rollout_pk(rollout_id), ticket_sk(1))
    reports = run_update(ctx, monkeypatch, during=lambda: ctx.aws.dynamodb.delete_item(
        TableName=ctx.ledger.table, Key=item_key))

    # When its update succeeds
    update_task.handle_update(ctx, rollout_id, 1)

    # Then the report went out anyway, the instance registered, and the failed mark is in the log
    [report] = reports.seen
    assert report["ticket"] == {}
    assert report["entry"] is not None and report["entry"].last_task == f"update {rollout_id}#1"
    assert "could not mark ticket 1 reported" in caplog.text


def test_a_successful_update_registers_the_health_it_just_checked_and_a_failed_one_probes(ctx, monkeypatch):
    # The app's health check passed at the end of the update: probing it again before the report only delays it
    probed: list[str] = []
    monkeypatch.setattr(registration, "probe_health", lambda _ctx: probed.append("probe") or Health.UNHEALTHY)
    rollout_id = updating_ticket(ctx)
    reports = run_update(ctx, monkeypatch)

    update_task.handle_update(ctx, rollout_id, 1)

    [report] = reports.seen
    assert report["event"].ok and report["entry"].health == "healthy" and probed == []

    # A failed update was rolled back: the app it runs now is probed
    rollout_id = updating_ticket(ctx)
    reports = run_update(ctx, monkeypatch, during=failing_install)
    update_task.handle_update(ctx, rollout_id, 1)
    [report] = reports.seen
    assert not report["event"].ok and report["entry"].health == "unhealthy" and probed == ["probe"]


def test_an_instance_an_operator_drained_reports_its_update_and_stays_drained(ctx, monkeypatch):
    # Given ticket 1 updating on an instance an operator drained (the drain task left its flag)
    rollout_id = updating_ticket(ctx)
    reports = run_update(ctx, monkeypatch)
    ctx.layout.drain_flag.parent.mkdir(parents=True, exist_ok=True)
    ctx.layout.drain_flag.touch()

    # When its update succeeds (its health check passed)
    update_task.handle_update(ctx, rollout_id, 1)

    # Then it reports success, and the entry it wrote keeps it out of the proxies until the operator undoes it
    [report] = reports.seen
    assert report["event"].ok and report["entry"].health == "draining"


def failing_install() -> None:
    raise UpdateFailed("health check failed", "")
