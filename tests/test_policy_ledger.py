"""The rollout policy on its way: the deploy command, the rollout's record, the conductor's messages and reads,
and the soak's check of what happened. The ledger is a moto server, as in production code paths."""

from __future__ import annotations

import time
from typing import Any

import pytest
from click.testing import CliRunner
from ledgerkit import bootstrapped_moto

from benchmarks.overlap import Span, updating_at_once
from skynet_tasks import names
from skynet_tasks.cli import exitcodes, main
from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.deploys import request_build
from skynet_tasks.events import BadEvent, from_message, to_message
from skynet_tasks.ledger import Ledger
from skynet_tasks.ledger.reads import Focus, partial_view
from skynet_tasks.policy_overrides import RolloutOverrides
from skynet_tasks.states import RolloutKind
from skynet_tasks.step import decide_and_write_until_settled

pytestmark = pytest.mark.timeout(60)

GROUP, MEMBERS = "local-api", ("a", "b", "c", "d", "e")


@pytest.fixture(scope="module")
def ledger():
    with bootstrapped_moto([GROUP]) as (_, aws):
        yield Ledger(aws.dynamodb, names.state_table("local"))


def test_a_rollout_keeps_its_batches_in_the_ledger_and_partial_reads_hold_a_whole_batch(ledger):
    ledger.create_rollout("r-batch", GROUP, "s1", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-batch", group=GROUP, release="s1", canary="a", update_timeout=60,
                                 max_parallel=("40%",)))
    for event in (ready, *(TicketTaken("r-batch", m) for m in "bcde"), UpdateReported("r-batch", 1, "a", ok=True)):
        decision = decide_and_write_until_settled(ledger, GROUP, event, MEMBERS, now=time.time())

    assert [(a.instance, a.ticket) for a in decision.actions] == [("b", 2), ("c", 3)]  # type: ignore[union-attr]
    stored = ledger.load_rollout("r-batch")
    assert stored is not None and stored.max_parallel == ("40%",) and stored.batches == (2,)
    whole = ledger.load_group(GROUP)
    for focus in (Focus(), Focus("r-batch", instances=("d",)), Focus("r-batch", ticket=3)):
        assert ledger.load_group(GROUP, focus) == partial_view(whole, focus), focus

    # One of the batch reports: decided on a partial read, the other of the batch still updating, nothing new starts.
    decision = decide_and_write_until_settled(ledger, GROUP, UpdateReported("r-batch", 3, "c", ok=True), MEMBERS)
    assert decision.actions == ()
    decision = decide_and_write_until_settled(ledger, GROUP, UpdateReported("r-batch", 2, "b", ok=True), MEMBERS)
    assert [(a.instance, a.ticket) for a in decision.actions] == [("d", 4), ("e", 5)]  # type: ignore[union-attr]


class _Messages:
    """Stands in for the build queue: only the rollout's record is under test here."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def build(self, group: str, request: dict[str, Any]) -> None:
        self.sent.append(request)


def test_a_deploy_with_its_own_batch_size_records_it_on_the_rollout(ledger):
    started = request_build(ledger, _Messages(), GROUP, "file:///nowhere", "main", "f" * 40, "cli",  # type: ignore[arg-type]
                            overrides=RolloutOverrides(max_parallel=("1", "50%")))
    assert (ledger.rollout_item(started.rollout_id) or {})["max_parallel"] == ["1", "50%"]
    plain = request_build(ledger, _Messages(), GROUP, "file:///nowhere", "main", "e" * 40, "cli")  # type: ignore[arg-type]
    assert "max_parallel" not in (ledger.rollout_item(plain.rollout_id) or {})  # skynet.yml's, once built


@pytest.mark.parametrize("value", ["0", "150%", "two", "1,0"])
def test_an_invalid_max_parallel_option_is_refused_before_anything_is_requested(value: str):
    result = CliRunner().invoke(main, ["deploy", "--env", "local", "--ref", "main", "--max-parallel", value],
                                prog_name="skynet")
    assert result.exit_code == exitcodes.INPUT
    assert "--max-parallel" in result.output and "batch size" in result.output


def test_the_rollout_event_carries_its_batch_sizes_and_a_bad_one_is_refused():
    event = RolloutReady(Rollout(id="r1", group="g", release="s", canary="a", update_timeout=60,
                                 max_parallel=("1", "2", "25%")))
    body, _ = to_message(event)
    assert from_message(body) == event
    older = {k: v for k, v in body.items() if k != "max_parallel"}  # from an agent before the policy
    assert from_message(older).rollout.max_parallel == ("1",)  # type: ignore[union-attr]
    with pytest.raises(BadEvent, match="max_parallel"):
        from_message({**body, "max_parallel": ["0"]})


def test_the_soak_finds_more_updating_at_once_than_a_batch_and_two_batches_at_once():
    one_at_a_time = [Span(0, 10, "r1", 2, (0, 1)), Span(10, 20, "r1", 3, (1, 1))]
    assert updating_at_once("g", one_at_a_time) == []
    assert updating_at_once("g", [Span(0, 10, "r1", 2, (0, 1)), Span(5, 20, "r1", 3, (1, 1))]) == [
        "g: r1#2, r1#3 were updating at once (a batch of 1 at most; #2 0.000-10.000 s, #3 5.000-20.000 s)"]
    pair = [Span(0, 10, "r1", 2, (0, 2)), Span(1, 12, "r1", 3, (0, 2)), Span(12, 20, "r1", 4, (1, 2))]
    assert updating_at_once("g", pair) == []
    early = [Span(0, 10, "r1", 2, (0, 2)), Span(1, 12, "r1", 3, (0, 2)), Span(11, 20, "r1", 4, (1, 2))]
    assert len(updating_at_once("g", early)) == 1  # the next batch started before the last of this one ended
    two_rollouts = [Span(0, 10, "r1", 2, (0, 2)), Span(1, 12, "r2", 2, (0, 2))]
    assert len(updating_at_once("g", two_rollouts)) == 1


def test_resuming_a_halted_rollout_while_its_batch_still_updates_is_refused_with_a_reason(ledger):
    from skynet_tasks.operator import OperatorError, rollout_action

    group = "local-halting"  # a group of its own: no rollout of the other tests ahead of it in the line
    ledger.ensure_group(group, "/srv/repo.git", "main")
    ledger.create_rollout("r-halt", group, "s2", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-halt", group=group, release="s2", canary="a", update_timeout=60,
                                 max_parallel=(2,)))
    for event in (ready, *(TicketTaken("r-halt", m) for m in "bcde"), UpdateReported("r-halt", 1, "a", ok=True),
                  UpdateReported("r-halt", 2, "b", ok=False, error="health check failed")):
        decide_and_write_until_settled(ledger, group, event, MEMBERS, now=time.time())
    assert ledger.rollout_item("r-halt")["state"] == "halted"  # ticket 3 (c) of the batch still updating

    for action in ("resume", "retry"):
        with pytest.raises(OperatorError, match="still updating"):
            rollout_action(ledger, None, "r-halt", action, "cli:test")  # type: ignore[arg-type]
    # Nothing was recorded or sent for the refused requests
    assert not [a for a in ledger.actions(group) if a.get("rollout_id") == "r-halt"]
