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
