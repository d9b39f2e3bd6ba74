"""The automatic revert (``on_failure: revert``) in the ledger, on moto's server as in production code paths:
the revert is written with the halt listed in the history and is not created twice; a revert that fails halts,
needing a person; the CLI shows which rollout reverted which; a rollout's message carries its failure policy.
"""

from __future__ import annotations

import pytest
from ledgerkit import bootstrapped_moto

from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.conductor.revert import REVERT_FAILED, revert_id

LEDGER_GROUP, LEDGER_MEMBERS = "local-api", ("a", "b", "c")


@pytest.fixture(scope="module")
def server():
    with bootstrapped_moto([LEDGER_GROUP]) as (moto, _):
        yield moto


@pytest.fixture(scope="module")
def cli_env(server) -> dict[str, str]:
    """What a shell with the env's env.sh sourced has: the CLI run in this process reaches the server."""
    return {**server.environment(), "SKYNET_ENV": "local", "AWS_MAX_ATTEMPTS": "2"}


@pytest.fixture(scope="module")
def ledger(server):
    from skynet_tasks import names
    from skynet_tasks.aws import aws_for
    from skynet_tasks.ledger import Ledger

    return Ledger(aws_for(server.environment()).dynamodb, names.state_table("local"))


def step(ledger, event: object):
    from skynet_tasks.step import decide_and_write_until_settled

    return decide_and_write_until_settled(ledger, LEDGER_GROUP, event, LEDGER_MEMBERS)  # type: ignore[arg-type]


def roll(ledger, rollout_id: str, release: str, on_failure: str, fail: str | None = None):
    """Roll ``release`` out to a, b, c (the canary a first), ``fail`` failing its update; the last decision."""
    from skynet_tasks.states import RolloutKind as Kind

    ledger.create_rollout(rollout_id, LEDGER_GROUP, release, Kind.CODE, {})
    step(ledger, RolloutReady(Rollout(id=rollout_id, group=LEDGER_GROUP, release=release, canary="a",
                                      update_timeout=60, on_failure=on_failure)))
    for member in "bc":
        step(ledger, TicketTaken(rollout_id, member))
    decision = None
    for number, member in enumerate("abc", start=1):
        decision = step(ledger, UpdateReported(rollout_id, number, member, ok=member != fail, error="boom"))
        if member == fail:
            break
    return decision


@pytest.mark.timeout(120)
def test_the_revert_is_written_with_the_halt_listed_in_the_history_and_not_created_twice(ledger, cli_env, caplog):
    from skynet_tasks.events import from_message, to_message
    from skynet_tasks.status import rollout_summary

    roll(ledger, "r-good", "s0", "halt")
    assert ledger.group_info(LEDGER_GROUP)["desired_release"] == "s0"
    decision = roll(ledger, "r-bad", "s1", "revert", fail="c")
    revert = revert_id("r-bad")
    assert [(a.instance, a.rollout_id, a.ticket) for a in decision.actions] == [("b", revert, 1)]

    stored = ledger.load_rollout(revert)
    assert stored is not None and stored.release == "s0" and stored.revert_of == "r-bad"
    assert [t.instance for t in stored.tickets] == ["b", "a"] and set(stored.expected) == {"a", "b"}
    assert revert in ledger.recent_rollouts(LEDGER_GROUP)
    halted = rollout_summary(ledger.rollout_view("r-bad"))
    assert halted["state"] == "halted" and halted["reverted_by"] == revert and halted["on_failure"] == "revert"
    assert ledger.rollout_item(revert)["source"] == "automatic revert of r-bad"  # type: ignore[index]
    info = ledger.group_info(LEDGER_GROUP)
    assert info["desired_release"] == "s0" and info["desired_rollout"] == revert

    # The report redelivered: nothing new, still one revert.
    again = step(ledger, UpdateReported("r-bad", 3, "c", ok=False, error="boom"))
    assert not again.changed
    assert [r.id for r in ledger.load_group(LEDGER_GROUP).line] == ["r-bad", revert]

    # The revert fails on b: it halts, needing a person, said at ERROR; nothing reverts it.
    with caplog.at_level("ERROR", logger="skynet_tasks.ledger.decisions"):
        step(ledger, UpdateReported(revert, 1, "b", ok=False, error="disk full"))
    assert ledger.load_rollout(revert).reason.startswith(REVERT_FAILED)  # type: ignore[union-attr]
    assert any(r.levelname == "ERROR" and "needs a person" in r.getMessage() for r in caplog.records)
    assert revert_id(revert) not in ledger.recent_rollouts(LEDGER_GROUP)

    # The CLI shows which rollout reverted which.
    from click.testing import CliRunner

    from skynet_tasks.cli import main

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), env=cli_env, prog_name="skynet")
        assert result.exit_code == 0, result.output
        return result.output

    listing = cli("rollout", "list", "--env", "local", "--layer", "api").splitlines()[1:]
    listed = {line.split()[0]: line for line in listing}
    assert listed[revert].endswith("revert of r-bad") and listed["r-bad"].endswith(f"reverted by {revert}")
    shown = cli("rollout", "show", "--env", "local", "r-bad")
    assert f"reverted_by {revert}" in shown and f"; reverted by {revert}" in shown
    assert "revert_of r-bad" in cli("rollout", "show", "--env", "local", revert)

    # The rollout's message carries its failure policy, checked as untrusted.
    body, _ = to_message(RolloutReady(Rollout(id="r9", group=LEDGER_GROUP, release="s9", on_failure="revert")))
    assert from_message(body).rollout.on_failure == "revert"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="on_failure"):
        from_message({**body, "on_failure": "explode"})
