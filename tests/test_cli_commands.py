"""The ``skynet`` command's exit codes, its operator actions' output, and shell completion.

Exit codes (skynet_tasks/cli/exitcodes.py): 0 done, 1 halted or failed, 3 timeout, 4 usage or input
error, 5 AWS unreachable. Against moto's server, with rollouts written through the ledger (tests/clikit.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clikit import DONE, GOOD_SHA, GROUP, HALTED, RUNNING, seeded_env

from skynet_tasks import names
from skynet_tasks.queues import Queues

pytestmark = pytest.mark.timeout(120)

# An endpoint nothing listens on, one attempt: AWS out of reach, at once.
UNREACHABLE = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
# No credentials anywhere in botocore's chain.
NO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None,
                  "AWS_PROFILE": None, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
                  "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI": None, "AWS_WEB_IDENTITY_TOKEN_FILE": None}


@pytest.fixture(scope="module")
def env():
    with seeded_env() as seeded:
        yield seeded


# ---- exit codes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("nope",),
    ("rollout", "show"),
    ("status", "--rollouts", "0"),
    ("deploy", "--env", "Bad Env", "--ref", "main"),
    ("--log-level", "LOUD", "status"),
], ids=" ".join)
def test_a_usage_error_exits_4_not_clicks_2(env, args):
    result = env.skynet(*args)

    assert result.exit_code == 4, result.output
    assert result.output.splitlines()[-1].startswith("Error: ")


def test_a_bad_skynet_variable_is_an_input_error(env):
    result = env.skynet("status", SKYNET_HEARTBEAT_INTERVL="5")

    assert result.exit_code == 4
    assert "SKYNET_HEARTBEAT_INTERVL is not a Skynet variable" in result.output


@pytest.mark.parametrize("args", [("rollout", "show", DONE), ("status",), ("rollout", "list", "--group", GROUP),
                                  ("logs", DONE), ("drain", "api-1")], ids=" ".join)
def test_aws_out_of_reach_exits_5_in_one_line(env, args):
    result = env.skynet(*args, **UNREACHABLE)

    assert result.exit_code == 5
    assert result.output.startswith("Error: AWS unreachable: Could not connect to the endpoint URL: "
                                    '"http://127.0.0.1:9/')
    assert len(result.output.splitlines()) == 1, result.output


def test_no_credentials_exits_5(env):
    result = env.skynet("rollout", "show", DONE, **NO_CREDENTIALS)

    assert (result.exit_code, result.output) == (5, "Error: AWS unreachable: Unable to locate credentials\n")


def test_deploy_to_an_unknown_group_exits_4(env):
    result = env.skynet("deploy", "--group", "local-nope", "--ref", "main")

    assert result.exit_code == 4
    assert result.output == "Error: group local-nope has no repository registered: start one of its instances first\n"


def test_agent_push_that_times_out_waiting_exits_3(env, tmp_path: Path):
    wheel = tmp_path / "skynet-9.9.9-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")

    result = env.skynet("agent", "push", "--env", "local", str(wheel), "--wait", "--timeout", "1", "--json")

    assert result.exit_code == 3, result.output
    pushed = json.loads(result.output[result.output.index("{"):])
    assert pushed["rollouts"] and all(r["state"] not in ("completed", "halted") for r in pushed["rollouts"])


# ---- operator actions ---------------------------------------------------------------------------
def test_pause_prints_what_was_recorded_and_queues_it_for_the_conductor(env):
    depth = Queues(env.aws.sqs).depth(names.maintenance_queue("local", GROUP))["visible"]

    text = env.skynet("rollout", "pause", RUNNING)
    as_json = env.skynet("rollout", "resume", RUNNING, "--json")

    assert (text.exit_code, text.output) == (0, f"rollout {RUNNING}: pause requested for group {GROUP}\n")
    assert as_json.exit_code == 0
    recorded = json.loads(as_json.output)
    assert {k: recorded[k] for k in ("group", "rollout_id", "action")} == \
        {"group": GROUP, "rollout_id": RUNNING, "action": "resume"}
    assert recorded["actor"].startswith("cli")
    assert Queues(env.aws.sqs).depth(names.maintenance_queue("local", GROUP))["visible"] == depth + 2


def test_an_action_on_a_finished_rollout_is_refused_with_exit_1(env):
    result = env.skynet("rollout", "pause", DONE)

    assert (result.exit_code, result.output) == (1, f"Error: rollout {DONE} is completed: nothing to pause\n")


def test_an_action_on_an_unknown_rollout_exits_4(env):
    result = env.skynet("rollout", "abort", "r20990101-000000-ffffff")

    assert (result.exit_code, result.output) == (4, "Error: no rollout r20990101-000000-ffffff\n")


def test_drain_and_undo_print_text_or_json(env):
    drained = env.skynet("drain", "api-3", "--json")
    undone = env.skynet("drain", "api-3", "--undo")

    assert drained.exit_code == undone.exit_code == 0
    record = json.loads(drained.output)
    assert (record["instance"], record["group"], record["action"]) == ("api-3", GROUP, "drain")
    assert undone.output == "instance api-3: back in service\n"


@pytest.mark.parametrize(("instance", "message"), [
    ("api-9", "Error: no instance api-9 is registered in env local"),
    ("api_1;", "instance id 'api_1;' is not valid"),
])
def test_drain_of_an_unknown_or_malformed_instance_exits_4(env, instance, message):
    result = env.skynet("drain", instance)

    assert result.exit_code == 4
    assert message in result.output


def test_re_register_of_an_unknown_instance_exits_4_and_a_known_one_prints_json(env):
    unknown = env.skynet("instance", "re-register", "api-9")
    known = env.skynet("instance", "re-register", "api-1", "--json")

    assert (unknown.exit_code, unknown.output) == (4, "Error: no instance api-9 is registered in env local\n")
    assert (known.exit_code, json.loads(known.output)) == (0, {"instance": "api-1", "requested": "re_register"})


def test_rollback_to_a_built_release_by_prefix_starts_a_rollout(env):
    result = env.skynet("rollback", "--group", GROUP, "--to", GOOD_SHA[:8], "--json")

    assert result.exit_code == 0, result.output
    started = json.loads(result.output)
    assert (started["group"], started["release"]) == (GROUP, GOOD_SHA)
    shown = json.loads(env.skynet("rollout", "show", started["rollout_id"], "--json").output)
    assert shown["state"] == "building" and shown["source"].startswith("rollback by cli")


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--group", GROUP), 1, f"Error: group {GROUP} has no previous release to roll back to"),
    (("--group", GROUP, "--to", "0123456"), 4, f"Error: group {GROUP} has no built release 0123456"),
    (("--group", "local-nope"), 4, "Error: no group local-nope"),
])
def test_rollback_refusals_say_why(env, args, code, message):
    result = env.skynet("rollback", *args)

    assert (result.exit_code, result.output) == (code, message + "\n")


def test_status_prints_groups_instances_and_rollouts_as_text_or_json(env):
    text = env.skynet("status", "--rollouts", "20")
    as_json = env.skynet("status", "--json")

    assert text.exit_code == as_json.exit_code == 0
    assert text.output.startswith(f"group {GROUP}  desired")
    assert f"  rollout {HALTED} bbbbbbbbbbbb halted: ticket 2 failed: health check failed" in text.output
    group = next(g for g in json.loads(as_json.output)["groups"] if g["name"] == GROUP)
    assert sorted(i["id"] for i in group["instances"]) == ["api-1", "api-2", "api-3"]


# ---- shell completion -----------------------------------------------------------------------------
def complete(env, line: str, **extra: str | None) -> list[str]:
    words = line.split(" ")
    result = env.skynet(_SKYNET_COMPLETE="bash_complete", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1), **extra)
    assert result.exit_code == 0, result.output
    return [entry.split(",", 1)[1] for entry in result.output.splitlines() if entry]


def test_completion_offers_groups_rollouts_and_instances_from_the_ledger(env):
    assert complete(env, "skynet rollout list --group local-") == [GROUP]
    assert {DONE, HALTED, RUNNING} <= set(complete(env, "skynet rollout show r2026"))
    assert complete(env, f"skynet logs {DONE[:-3]}") == [DONE]
    assert complete(env, "skynet drain api-") == ["api-1", "api-2", "api-3"]
    assert complete(env, "skynet instance re-register api-2") == ["api-2"]


def test_completion_without_aws_offers_nothing_and_prints_no_error(env):
    assert complete(env, "skynet rollout show r", **UNREACHABLE) == []
    assert complete(env, "skynet drain a", **NO_CREDENTIALS) == []


def test_install_units_lists_the_unit_files_as_text_or_json(tmp_path: Path):
    from click.testing import CliRunner

    from skynet_tasks.cli import main

    args = ["instance", "install-units", "--no-systemctl", "--root", str(tmp_path / "root")]
    text = CliRunner().invoke(main, [*args, "--unit-dir", str(tmp_path / "a")])
    as_json = CliRunner().invoke(main, [*args, "--unit-dir", str(tmp_path / "b"), "--json"])

    assert text.exit_code == as_json.exit_code == 0, text.output
    units = ("skynet-worker.service", "skynet-app.service", "skynet-build@.service")
    assert text.output.splitlines() == [str(tmp_path / "a" / unit) for unit in units]
    assert json.loads(as_json.output) == {"written": [str(tmp_path / "b" / unit) for unit in units]}


# ---- deploy's policy overrides ----------------------------------------------------------------------------
def test_deploy_records_its_policy_overrides_on_the_rollout_and_asks_for_the_build(env):
    queue = names.maintenance_queue("local", GROUP)
    depth = Queues(env.aws.sqs).depth(queue)["visible"]

    result = env.skynet("deploy", "--ref", "e" * 40, "--canary", "manual", "--promote-timeout", "1h",
                        "--window", "mon-fri 09:00-17:00 Europe/Paris", "--window", "sat 22:00-02:00",
                        "--max-parallel", "1,50%", "--progress-deadline", "0", "--json")

    assert result.exit_code == 0, result.output
    record = env.ledger.rollout_item(json.loads(result.output)["rollout_id"]) or {}
    assert (record["state"], record["promotion"], record["promote_timeout"], record["max_parallel"],
            record["progress_deadline"]) == ("building", "manual", 3600, ["1", "50%"], 0)
    assert record["windows"] == ["mon,tue,wed,thu,fri 09:00:00-17:00:00 Europe/Paris", "sat 22:00:00-02:00:00 UTC"]
    assert "min_healthy_time" not in record and "on_failure" not in record  # skynet.yml's, once built
    assert Queues(env.aws.sqs).depth(queue)["visible"] == depth + 1


@pytest.mark.parametrize(("args", "message"), [
    (("--canary", "later"), "Invalid value for '--canary': 'later' is not one of 'auto', 'manual'"),
    (("--promote-timeout", "90d"), "--promote-timeout: '90d' is out of range: at least 1 s and at most 30 days"),
    (("--window", "mon-fri"), "--window[0]: 'mon-fri' is not a window: expected days, hours and an optional time"),
    (("--window", "sat 10:00-12:00", "--window", "mon 09:00-17:00 Mars/Olympus"),
     "--window[1].tz: unknown time zone 'Mars/Olympus'"),
    (("--min-healthy-time", "soon"), "--min-healthy-time: 'soon' is not a duration"),
], ids=lambda value: " ".join(value) if isinstance(value, tuple) else "")
def test_a_bad_deploy_override_exits_4_naming_the_flag_and_nothing_is_recorded_or_sent(env, args, message):
    queue = names.maintenance_queue("local", GROUP)
    depth, rollouts = Queues(env.aws.sqs).depth(queue)["visible"], env.ledger.recent_rollouts(GROUP, 50)

    result = env.skynet("deploy", "--ref", "f" * 40, *args)

    assert result.exit_code == 4 and message in " ".join(result.output.split()), result.output
    assert env.ledger.recent_rollouts(GROUP, 50) == rollouts
    assert Queues(env.aws.sqs).depth(queue)["visible"] == depth
