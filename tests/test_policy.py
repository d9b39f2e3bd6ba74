"""The rollout policy in skynet.yml (``rollout: {max_parallel: ...}``): what is accepted, what is refused and why."""

from __future__ import annotations

import pytest

from skynet_tasks.buildspec import BuildSpecError, parse_buildspec
from skynet_tasks.policy import DEFAULT_MAX_PARALLEL, PolicyError, batch_sizes, parse_max_parallel

pytestmark = pytest.mark.timeout(10)


def test_without_a_rollout_key_a_group_updates_one_instance_at_a_time():
    assert parse_buildspec("build: []").rollout.max_parallel == DEFAULT_MAX_PARALLEL == ("1",)
    assert parse_buildspec("rollout: {}").rollout.max_parallel == ("1",)


@pytest.mark.parametrize(("written", "normalised"), [
    ("2", ("2",)),
    ("'3'", ("3",)),
    ("'25%'", ("25%",)),
    ("'100%'", ("100%",)),
    ("'12.5%'", ("12.5%",)),
    ("[1, 2, '25%']", ("1", "2", "25%")),
])
def test_a_count_a_percentage_or_a_ramp_is_accepted(written: str, normalised: tuple[str, ...]):
    assert parse_buildspec(f"rollout:\n  max_parallel: {written}\n").rollout.max_parallel == normalised


@pytest.mark.parametrize(("written", "rule"), [
    ("0", "a count is at least 1"),
    ("-2", "a count is at least 1"),
    ("'0%'", "a percentage is above 0% and at most 100%"),
    ("'150%'", "a percentage is above 0% and at most 100%"),
    ("'-5%'", "expected a count of at least 1"),
    ("two", "expected a count of at least 1"),
    ("1.5", "expected a count of at least 1"),
    ("true", "expected a count of at least 1"),
    ("[]", "an empty list is not a ramp"),
    ("{a: 1}", "expected a count of at least 1"),
])
def test_an_invalid_batch_size_fails_the_build_naming_the_key_and_the_rule(written: str, rule: str):
    with pytest.raises(BuildSpecError) as refused:
        parse_buildspec(f"rollout:\n  max_parallel: {written}\n")
    assert str(refused.value).startswith("rollout.max_parallel")
    assert rule in str(refused.value)


def test_a_bad_step_of_a_ramp_is_named_by_its_place():
    with pytest.raises(BuildSpecError, match=r"rollout.max_parallel\[2\]: '0%'.*above 0%"):
        parse_buildspec("rollout:\n  max_parallel: [1, 2, '0%']\n")


def test_a_ramp_longer_than_the_limit_is_refused():
    with pytest.raises(PolicyError, match="at most 20 steps"):
        parse_max_parallel(list(range(1, 22)))


def test_an_unknown_key_under_rollout_fails_the_build_naming_it():
    with pytest.raises(BuildSpecError, match=r"rollout: unknown key\(s\) serial \(known: max_parallel"):
        parse_buildspec("rollout:\n  serial: 2\n")


def test_rollout_must_be_a_mapping():
    with pytest.raises(BuildSpecError, match="rollout: expected a mapping"):
        parse_buildspec("rollout: 2\n")


@pytest.mark.parametrize(("max_parallel", "group", "sizes"), [
    (("1",), 5, (1,)),
    (("2",), 5, (2,)),
    (("40%",), 5, (2,)),  # rounded down, as Ansible's serial
    (("10%",), 5, (1,)),  # but never below one
    (("100%",), 5, (5,)),
    (("9",), 5, (5,)),  # never more than the group
    (("1", "2", "25%"), 20, (1, 2, 5)),
    (("2",), 0, (2,)),  # an empty group: nothing to scale against
])
def test_batch_sizes_in_a_group(max_parallel: tuple[str, ...], group: int, sizes: tuple[int, ...]):
    assert batch_sizes(max_parallel, group) == sizes


# ---- bake time (min_healthy_time) and progress deadline --------------------------------------------------------

def test_without_them_there_is_no_bake_and_no_progress_deadline():
    policy = parse_buildspec("build: []").rollout
    assert policy.min_healthy_time == 0.0
    assert policy.progress_deadline is None


@pytest.mark.parametrize(("written", "seconds"), [
    ("0", 0.0), ("30", 30.0), ("2.5", 2.5), ("'30s'", 30.0), ("'2m'", 120.0), ("'1500ms'", 1.5), ("' 45 s'", 45.0),
])
def test_a_bake_time_is_seconds_or_a_duration(written: str, seconds: float):
    spec = parse_buildspec(f"update_timeout: 300\nrollout:\n  min_healthy_time: {written}\n")
    assert spec.rollout.min_healthy_time == seconds


@pytest.mark.parametrize(("written", "seconds"), [("'10m'", 600.0), ("'1h'", 3600.0), ("900", 900.0), ("0", None)])
def test_a_progress_deadline_is_a_duration_and_0_means_none(written: str, seconds: float | None):
    spec = parse_buildspec(f"rollout:\n  progress_deadline: {written}\n")
    assert spec.rollout.progress_deadline == seconds


@pytest.mark.parametrize(("key", "written", "rule"), [
    ("min_healthy_time", "-5", "it is at least 0"),
    ("min_healthy_time", "'-5s'", "is not a duration"),
    ("min_healthy_time", "soon", "is not a duration"),
    ("min_healthy_time", "'5 minutes'", "is not a duration"),
    ("min_healthy_time", "true", "is not a duration"),
    ("min_healthy_time", "[5]", "is not a duration"),
    ("min_healthy_time", ".nan", "it is at least 0 and finite"),
    ("min_healthy_time", "'1h'", "longer than an update may run (580s)"),
    ("progress_deadline", "-1", "it is at least 0"),
    ("progress_deadline", "'ten minutes'", "is not a duration"),
    ("progress_deadline", "'8d'", "is longer than 7 days"),
    ("progress_deadline", "'3w'", "is not a duration"),
    ("progress_deadline", "700000", "longer than 7 days"),
])
def test_an_invalid_duration_fails_the_build_naming_the_key_and_the_rule(key: str, written: str, rule: str):
    with pytest.raises(BuildSpecError) as refused:
        parse_buildspec(f"rollout:\n  {key}: {written}\n")
    assert str(refused.value).startswith(f"rollout.{key}: ")
    assert rule in str(refused.value)


def test_a_bake_longer_than_the_update_timeout_fails_the_build():
    with pytest.raises(BuildSpecError,
                       match=r"rollout.min_healthy_time: 90s is longer than the update timeout \(60s\)"):
        parse_buildspec("update_timeout: 60\nrollout:\n  min_healthy_time: 90s\n")


def test_a_bake_that_does_not_fit_in_the_update_task_with_the_update_fails_the_build():
    with pytest.raises(BuildSpecError, match=r"rollout.min_healthy_time: 300s with the update timeout \(300s\) "
                                             r"is longer than an update may run \(580s\)"):
        parse_buildspec("update_timeout: 300\nrollout:\n  min_healthy_time: 5m\n")


def test_a_progress_deadline_not_longer_than_a_tickets_own_deadline_fails_the_build():
    with pytest.raises(BuildSpecError, match=r"rollout.progress_deadline: 70s is not longer than one ticket's "
                                             r"deadline \(70s: update_timeout plus min_healthy_time\)"):
        parse_buildspec("update_timeout: 60\nrollout:\n  min_healthy_time: 10\n  progress_deadline: 70\n")
    spec = parse_buildspec("update_timeout: 60\nrollout:\n  min_healthy_time: 10\n  progress_deadline: 71\n")
    assert spec.rollout.progress_deadline == 71.0


def test_a_rollout_ready_message_with_a_bad_bake_is_refused():
    from skynet_tasks.conductor import Rollout, RolloutReady
    from skynet_tasks.events import BadEvent, from_message, to_message

    body, _ = to_message(RolloutReady(Rollout("R1", "g", "abc", canary="i1", update_timeout=60.0,
                                              min_healthy_time=5.0, progress_deadline=120.0)))
    event = from_message(body)
    assert isinstance(event, RolloutReady)
    assert (event.rollout.min_healthy_time, event.rollout.progress_deadline) == (5.0, 120.0)
    for bad in ({"min_healthy_time": -1}, {"min_healthy_time": 61}, {"progress_deadline": "soon"},
                {"progress_deadline": 30}):
        with pytest.raises(BadEvent):
            from_message({**body, **bad})
    older = {k: v for k, v in body.items() if k not in ("min_healthy_time", "progress_deadline")}
    event = from_message(older)  # an agent older than the bake: none
    assert isinstance(event, RolloutReady)
    assert (event.rollout.min_healthy_time, event.rollout.progress_deadline) == (0.0, None)


@pytest.mark.parametrize(("flag", "value", "rule"), [
    ("--min-healthy-time", "soon", "--min-healthy-time: 'soon' is not a duration"),
    ("--min-healthy-time", "-3", "--min-healthy-time: '-3' is not a duration"),
    ("--progress-deadline", "10 minutes", "--progress-deadline: '10 minutes' is not a duration"),
])
def test_skynet_deploy_refuses_a_bad_duration_before_doing_anything(flag: str, value: str, rule: str):
    from click.testing import CliRunner

    from skynet_tasks.cli.core import deploy

    result = CliRunner().invoke(deploy, ["--env", "prod", "--layer", "api", "--ref", "main", flag, value])
    assert result.exit_code == 2
    assert rule in result.output


def test_skynet_deploy_takes_durations_as_seconds_or_text():
    from skynet_tasks.policy_overrides import parse_overrides

    def given(**typed: str | None) -> dict:
        return parse_overrides(typed).given()

    assert given(min_healthy_time="90s", progress_deadline="10m") == {"min_healthy_time": 90.0,
                                                                       "progress_deadline": 600.0}
    # 0 overrides skynet.yml's progress deadline with none (stored as 0); absent keeps skynet.yml's.
    assert given(min_healthy_time="0", progress_deadline="0") == {"min_healthy_time": 0.0, "progress_deadline": 0.0}
    assert given(min_healthy_time=None, progress_deadline=None) == {}
