"""``skynet rollout status|list|history|show`` and ``skynet logs``: human and JSON output, exit codes.

Against moto's server, with rollouts written through the ledger (tests/clikit.py). The progress line
itself, computed without AWS, is ``test_cli_progress.py``'s.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from clikit import BUILDING, DONE, GROUP, HALTED, RUNNING, Env, finish_ticket, seeded_env

from skynet_tasks.states import RolloutState, TicketState

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def env():
    with seeded_env() as seeded:
        yield seeded


def later(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


# ---- status, once ---------------------------------------------------------------------------
def test_status_of_a_running_rollout_shows_the_ticket_updating_and_exits_0(env):
    result = env.skynet("rollout", "status", RUNNING)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == ["ticket 1/3 api-1 done 10.0 s", lines[1], "ticket 3/3 api-3 waiting"]
    updating = re.fullmatch(r"ticket 2/3 api-2 updating (\d+\.\d) s", lines[1])
    assert updating and 2.1 <= float(updating[1]) < 10  # counted from its acknowledgement, not its start
    assert re.fullmatch(rf"rollout {RUNNING} \(group local-api, code cccccccccccc\): running, 1/3 updated, "
                        r"\d\d\.\d s: ticket 2/3 api-2 updating \d+\.\d s", lines[3])


def test_status_as_json_has_the_stable_schema(env):
    result = env.skynet("rollout", "status", RUNNING, "--json")

    assert result.exit_code == 0
    status = json.loads(result.output)
    assert set(status) == {"rollout_id", "group", "release", "kind", "state", "phase", "done", "total", "elapsed",
                           "reason", "over", "exit_code", "tickets"}
    assert (status["state"], status["done"], status["total"], status["over"], status["exit_code"]) == \
        ("running", 1, 3, False, None)
    assert [(t["number"], t["instance"], t["state"]) for t in status["tickets"]] == \
        [(1, "api-1", "done"), (2, "api-2", "updating"), (3, "api-3", "waiting")]


def test_status_of_a_halted_rollout_exits_1_with_its_reason(env):
    result = env.skynet("rollout", "status", HALTED)

    assert result.exit_code == 1
    assert "halted (ticket 2 failed: health check failed), 1/3 updated" in result.output.splitlines()[-1]
    assert json.loads(env.skynet("rollout", "status", HALTED, "--json").output)["exit_code"] == 1


def test_status_of_a_completed_rollout_exits_0(env):
    result = env.skynet("rollout", "status", DONE, "--watch")

    assert result.exit_code == 0
    assert result.output.splitlines()[-1].endswith("completed, 3/3 updated, 30.0 s: every ticket done")


def test_status_of_a_group_follows_its_newest_rollout_and_shows_the_builds_phase(env):
    result = env.skynet("rollout", "status", "--group", GROUP, "--json")

    status = json.loads(result.output)
    assert result.exit_code == 0
    assert status["rollout_id"] == BUILDING and status["state"] == "building"
    assert re.fullmatch(r"building on api-2 \d+\.\d s", status["phase"])
    assert status["total"] == 3  # not yet published: out of the group's registered members


@pytest.mark.parametrize(("args", "message"), [
    (("r20990101-000000-ffffff",), "Error: no rollout r20990101-000000-ffffff"),
    (("--group", "local-nope"), "Error: no group local-nope"),
    (("bad id!",), "Error: 'bad id!' is not a rollout id"),
    (("--group", "Bad_Group"), "Error: group 'Bad_Group' is not valid"),
])
def test_status_of_an_unknown_rollout_or_group_is_one_line_and_exit_4(env, args, message):
    result = env.skynet("rollout", "status", *args)

    assert result.exit_code == 4
    assert result.output.splitlines()[0].startswith(message), result.output
    assert len(result.output.splitlines()) == 1


def test_status_needs_a_rollout_or_a_group_not_both(env):
    neither = env.skynet("rollout", "status")
    both = env.skynet("rollout", "status", RUNNING, "--group", GROUP)

    assert neither.exit_code == both.exit_code == 4
    assert "give either a ROLLOUT_ID or --group" in neither.output


# ---- status --watch ---------------------------------------------------------------------------
def test_watch_prints_each_change_and_exits_with_the_outcome(env):
    # Given a rollout whose ticket 2 is updating
    rollout_id = _copy_of_running(env, "r20261201-140000-eeeeee")
    # When ticket 2 then ticket 3 finish while the operator watches
    timers = [later(1.0, lambda: _advance(env, rollout_id, 2, TicketState.DONE)),
              later(2.0, lambda: _advance(env, rollout_id, 3, TicketState.UPDATING)),
              later(3.0, lambda: finish_ticket(env, rollout_id, 3, TicketState.DONE, RolloutState.COMPLETED))]
    result = env.skynet("rollout", "status", rollout_id, "--watch", "--timeout", "60")
    for timer in timers:
        timer.join()

    # Then each ticket's new state is a line of its own, and the last says it completed: exit 0
    assert result.exit_code == 0, result.output
    ticket_lines = [line.rsplit(" ", 2)[0] if line.endswith(" s") else line
                    for line in result.output.splitlines() if line.startswith("ticket")]
    assert ticket_lines == ["ticket 1/3 api-1 done", "ticket 2/3 api-2 updating", "ticket 3/3 api-3 waiting",
                            "ticket 2/3 api-2 done", "ticket 3/3 api-3 updating", "ticket 3/3 api-3 done"]
    assert "completed, 3/3 updated" in result.output.splitlines()[-1]


def test_watch_of_a_rollout_that_halts_exits_1_and_json_lines_end_with_it(env):
    rollout_id = _copy_of_running(env, "r20261201-150000-ffffff")
    timer = later(1.0, lambda: finish_ticket(env, rollout_id, 2, TicketState.FAILED, RolloutState.HALTED))

    result = env.skynet("rollout", "status", rollout_id, "--watch", "--json", "--timeout", "60")
    timer.join()

    assert result.exit_code == 1
    changes = [json.loads(line) for line in result.output.splitlines()]
    assert [c["state"] for c in changes][0] == "running" and changes[-1]["state"] == "halted"
    assert changes[-1]["over"] is True and changes[-1]["exit_code"] == 1


def test_watch_past_its_timeout_exits_3(env):
    started = time.monotonic()
    result = env.skynet("rollout", "status", RUNNING, "--watch", "--timeout", "1")

    assert result.exit_code == 3
    assert result.output.splitlines()[-1] == f"rollout {RUNNING}: still running after 1 s; stopped watching"
    assert time.monotonic() - started < 10


def test_watch_of_a_rollout_deleted_meanwhile_exits_1_saying_so(env):
    rollout_id = _copy_of_running(env, "r20261201-160000-abcabc")
    timer = later(1.0, lambda: env.delete_rollout(rollout_id))

    result = env.skynet("rollout", "status", rollout_id, "--watch", "--timeout", "60")
    timer.join()

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == f"Error: rollout {rollout_id} was deleted while watched"
    assert "Traceback" not in result.output


def _copy_of_running(env: Env, rollout_id: str) -> str:
    """A fresh rollout like RUNNING (ticket 1 done, 2 updating, 3 waiting), for a test to move on."""
    from dataclasses import replace

    assert env.ledger.create_rollout(rollout_id, GROUP, "f" * 40, env.rollout(RUNNING).kind, {"source": "test"})
    env.decide(replace(env.rollout(RUNNING), id=rollout_id, release="f" * 40))
    return rollout_id


def _advance(env: Env, rollout_id: str, number: int, state: TicketState) -> None:
    from dataclasses import replace

    rollout = env.rollout(rollout_id)
    now = time.time()
    tickets = tuple(replace(t, state=state, started_at=t.started_at or now,
                            finished_at=now if state.finished else None) if t.number == number else t
                    for t in rollout.tickets)
    env.decide(replace(rollout, tickets=tickets))


# ---- list, history, show -------------------------------------------------------------------------
def test_list_shows_the_groups_rollouts_newest_first(env):
    result = env.skynet("rollout", "list", "--group", GROUP, "--limit", "20")

    assert result.exit_code == 0
    rows = result.output.splitlines()
    assert rows[0].split()[:5] == ["ROLLOUT", "RELEASE", "KIND", "STATE", "TICKETS"]
    ids = [row.split()[0] for row in rows[1:]]
    assert [i for i in ids if i in (BUILDING, RUNNING, HALTED, DONE)] == [BUILDING, RUNNING, HALTED, DONE]
    assert rows[-1].split()[2:5] == ["code", "completed", "3/3"] and rows[-1].endswith("30.0 s")


def test_history_is_list_and_its_json_holds_whole_rollouts(env):
    result = env.skynet("rollout", "history", "--group", GROUP, "--limit", "20", "--json")

    assert result.exit_code == 0
    listed = json.loads(result.output)
    assert listed["group"] == GROUP
    by_id = {r["id"]: r for r in listed["rollouts"]}
    assert {DONE, HALTED, RUNNING, BUILDING} <= set(by_id)
    assert by_id[HALTED]["reason"] == "ticket 2 failed: health check failed"
    assert [t["state"] for t in by_id[HALTED]["tickets"]] == ["done", "failed", "cancelled"]
    assert by_id[DONE]["expected"] == ["api-1", "api-2", "api-3"]


def test_list_of_an_unknown_group_exits_4(env):
    result = env.skynet("rollout", "list", "--group", "local-nope")

    assert (result.exit_code, result.output) == (4, "Error: no group local-nope\n")


def test_show_gives_tickets_instances_times_and_outcome(env):
    text = env.skynet("rollout", "show", HALTED)
    as_json = env.skynet("rollout", "show", HALTED, "--json")

    assert text.exit_code == as_json.exit_code == 0
    lines = text.output.splitlines()
    assert lines[0] == f"rollout {HALTED}  group {GROUP}  code {'b' * 40}"
    assert lines[1] == "  state halted: ticket 2 failed: health check failed"
    failed = next(line for line in lines if line.split()[:3] == ["2", "api-2", "failed"])
    assert failed.split()[-5:] == ["4.0", "s", "health", "check", "failed"]
    shown = json.loads(as_json.output)
    assert shown["id"] == HALTED and shown["state"] == "halted" and shown["canary"] == "api-1"
    assert shown["tickets"][1]["error"] == "health check failed"


def test_show_of_an_unknown_rollout_exits_4(env):
    result = env.skynet("rollout", "show", "r20990101-000000-ffffff")

    assert (result.exit_code, result.output) == (4, "Error: no rollout r20990101-000000-ffffff\n")


# ---- logs ------------------------------------------------------------------------------------
def test_logs_prints_the_build_log_then_each_tickets(env):
    result = env.skynet("logs", DONE)

    assert result.exit_code == 0
    assert result.output.splitlines()[:2] == ["==> build: logs/builds/good.log", "compiling... ok"]
    assert f"==> ticket 3 (api-3): logs/updates/{DONE}/000003.log\nupdate {DONE} ticket 3\n" in result.output


def test_logs_as_json_is_one_object_per_log(env):
    result = env.skynet("logs", HALTED, "--ticket", "2", "--json")

    assert result.exit_code == 0
    [entry] = [json.loads(line) for line in result.output.splitlines()]
    assert entry == {"rollout_id": HALTED, "title": "ticket 2 (api-2)", "ticket": 2, "instance": "api-2",
                     "key": f"logs/updates/{HALTED}/000002.log", "text": f"update {HALTED} ticket 2\n"}


def test_logs_of_an_unknown_rollout_or_ticket_exit_4(env):
    unknown = env.skynet("logs", "r20990101-000000-ffffff")
    no_ticket = env.skynet("logs", DONE, "--ticket", "9")

    assert (unknown.exit_code, unknown.output) == (4, "Error: no rollout r20990101-000000-ffffff\n")
    assert (no_ticket.exit_code, no_ticket.output) == (4, f"Error: rollout {DONE} has no ticket 9\n")


def test_logs_follow_prints_each_log_when_written_and_exits_with_the_outcome(env):
    rollout_id = _copy_of_running(env, "r20261201-170000-fedfed")
    bucket_key = f"logs/updates/{rollout_id}/000002.log"

    def ticket_2_reports() -> None:
        env.aws.s3.put_object(Bucket=_bucket(env), Key=bucket_key, Body=b"ticket two updated\n")
        env.ledger.annotate_ticket(rollout_id, 2, {"log_key": bucket_key})
        finish_ticket(env, rollout_id, 2, TicketState.FAILED, RolloutState.HALTED)

    timer = later(1.5, ticket_2_reports)
    result = env.skynet("logs", rollout_id, "--follow", "--timeout", "60")
    timer.join()

    assert result.exit_code == 1  # it halted
    assert result.output == f"==> ticket 2 (api-2): {bucket_key}\nticket two updated\n"


def _bucket(env: Env) -> str:
    from skynet_tasks.resources import resolve

    return resolve(env.aws, "local").repo_bucket
