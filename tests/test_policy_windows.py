"""Maintenance windows and manual promotion in skynet.yml: parsing, and the window arithmetic. Pure: no AWS."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from skynet_tasks.buildspec import BuildSpecError, parse_buildspec
from skynet_tasks.conductor import Rollout
from skynet_tasks.conductor.windows import closed, is_open, next_opening, waiting_reason
from skynet_tasks.policy import PolicyError, RolloutPolicy, parse_policy
from skynet_tasks.policy_windows import parse_windows

pytestmark = pytest.mark.timeout(10)

UTC, PARIS = ZoneInfo("UTC"), ZoneInfo("Europe/Paris")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, tz: ZoneInfo = UTC) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp()


def windows(*entries: dict[str, str]) -> tuple[str, ...]:
    return parse_windows(list(entries))


# ---- parsing -------------------------------------------------------------------------------------------------

def test_a_full_policy_is_read_and_survives_the_release_record():
    spec = parse_buildspec("rollout:\n  canary: manual\n  promote_timeout: 30m\n  windows:\n"
                           "    - {days: mon-fri, hours: '09:00-17:00', tz: Europe/Paris}\n"
                           "    - {days: 'fri-mon', hours: '22:00-02:00'}\n")
    policy = spec.rollout
    assert policy.canary == "manual" and policy.promote_timeout == 1800.0
    assert policy.windows == ("mon,tue,wed,thu,fri 09:00:00-17:00:00 Europe/Paris",
                              "mon,fri,sat,sun 22:00:00-02:00:00 UTC")
    assert parse_policy(policy.record()) == policy
    assert parse_policy(None) == RolloutPolicy() and RolloutPolicy().windows == () and RolloutPolicy().canary == "auto"


@pytest.mark.parametrize(("value", "seconds"), [(90, 90.0), ("90", 90.0), ("30m", 1800.0), ("2h", 7200.0),
                                                 ("1d", 86400.0), ("1.5h", 5400.0)])
def test_a_promote_timeout_is_seconds_or_a_duration(value: object, seconds: float):
    assert parse_policy({"canary": "manual", "promote_timeout": value}).promote_timeout == seconds


@pytest.mark.parametrize(("yaml", "message"), [
    ("canary: sometimes", r"rollout\.canary: 'sometimes' is not a canary mode: expected auto or manual"),
    ("promote_timeout: soon", r"rollout\.promote_timeout: 'soon' is not a duration"),
    ("promote_timeout: 0", r"rollout\.promote_timeout: 0 is out of range"),
    ("promote_timeout: 31d", r"rollout\.promote_timeout: '31d' is out of range"),
    ("windows: []", r"rollout\.windows: an empty list would never open"),
    ("windows: mon-fri", r"rollout\.windows: expected a list of windows"),
    ("windows: [{days: 'mon-fry'}]", r"rollout\.windows\[0\]\.days: unknown day 'fry'"),
    ("windows: [{days: ','}]", r"rollout\.windows\[0\]\.days: no days: the window would never open"),
    ("windows: [{hours: '09:00-25:00'}]", r"rollout\.windows\[0\]\.hours: '25:00' is out of range"),
    ("windows: [{hours: '09:60-10:00'}]", r"rollout\.windows\[0\]\.hours: '09:60' is out of range"),
    ("windows: [{hours: '24:00-02:00'}]", r"rollout\.windows\[0\]\.hours: a window starts at 23:59:59 at the latest"),
    ("windows: [{hours: '9am-5pm'}]", r"rollout\.windows\[0\]\.hours: '9am' is not a time of day"),
    ("windows: [{hours: '09:00'}]", r"rollout\.windows\[0\]\.hours: expected a start and an end"),
    ("windows: [{hours: '10:00-10:00'}]", r"rollout\.windows\[0\]\.hours: '10:00-10:00' is zero hours long: "
                                           r"the window would never open"),
    ("windows: [{tz: Mars/Olympus}]", r"rollout\.windows\[0\]\.tz: unknown time zone 'Mars/Olympus'"),
    ("windows: [{tz: ../../etc/passwd}]", r"rollout\.windows\[0\]\.tz: '../../etc/passwd' is not a time zone"),
    ("windows: [{days: mon, when: always}]",
     r"rollout\.windows\[0\]: unknown key\(s\) when \(known: days, hours, tz\)"),
    ("windows: [mon]", r"rollout\.windows\[0\]: 'mon' is not a window: expected days, hours and an optional"),
])
def test_a_bad_policy_fails_the_build_naming_the_key_and_the_rule(yaml: str, message: str):
    with pytest.raises(BuildSpecError, match=message):
        parse_buildspec(f"rollout:\n  {yaml}\n")


def test_days_take_names_ranges_that_wrap_and_every_day():
    assert parse_windows([{"days": "Saturday,sun"}]) == ("sat,sun 00:00:00-24:00:00 UTC",)
    assert parse_windows([{"days": "fri-mon"}])[0].startswith("mon,fri,sat,sun ")
    assert parse_windows([{"days": "*", "hours": "00:00-24:00"}]) == (
        "mon,tue,wed,thu,fri,sat,sun 00:00:00-24:00:00 UTC",)


def test_a_window_line_reads_back_and_a_tampered_one_is_refused():
    line = windows({"days": "mon-fri", "hours": "09:00:30-17:00", "tz": "Europe/Paris"})
    assert parse_windows(list(line)) == line
    with pytest.raises(ValueError, match="unknown day 'mom'"):
        parse_windows(["mom 09:00:00-17:00:00 UTC"])


def test_policy_errors_are_value_errors_with_the_key():
    with pytest.raises(PolicyError, match=r"^rollout\.windows\[1\]\.tz"):
        parse_policy({"windows": [{"days": "mon"}, {"tz": "Nowhere/Land"}]})


# ---- arithmetic ----------------------------------------------------------------------------------------------

def test_office_hours_in_paris_open_and_close_at_the_local_wall_clock():
    office = windows({"days": "mon-fri", "hours": "09:00-17:00", "tz": "Europe/Paris"})
    tuesday = (2026, 12, 1)  # winter: Paris is UTC+1
    assert not is_open(office, at(*tuesday, 7, 59, 59))
    assert is_open(office, at(*tuesday, 8, 0, 0))  # 09:00 in Paris
    assert is_open(office, at(*tuesday, 15, 59, 59)) and not is_open(office, at(*tuesday, 16))  # closes at 17:00
    assert next_opening(office, at(*tuesday, 16)) == at(2026, 12, 2, 8)  # Wednesday 09:00 in Paris
    assert next_opening(office, at(2026, 12, 4, 17)) == at(2026, 12, 7, 8)  # Friday evening: Monday
    assert next_opening(office, at(*tuesday, 10)) == at(*tuesday, 10)  # open: now


def test_on_the_day_the_clocks_go_forward_a_window_opens_at_its_local_time():
    early = windows({"days": "sun", "hours": "09:00-17:00", "tz": "Europe/Paris"})
    # 2026-03-29: Paris moves from UTC+1 to UTC+2 at 02:00 local time.
    assert next_opening(early, at(2026, 3, 29, 0)) == at(2026, 3, 29, 9, tz=PARIS) == at(2026, 3, 29, 7)
    assert next_opening(early, at(2026, 3, 22, 0)) == at(2026, 3, 22, 8)  # the Sunday before: UTC+1
    # A night window over the change is an hour shorter: 01:00 to 04:00 local is 00:00 to 02:00 UTC.
    night = windows({"days": "sun", "hours": "01:00-04:00", "tz": "Europe/Paris"})
    assert is_open(night, at(2026, 3, 29, 1, 59)) and not is_open(night, at(2026, 3, 29, 2))


def test_a_window_that_crosses_midnight_belongs_to_its_first_day():
    night = windows({"days": "fri", "hours": "22:00-02:00"})
    friday, saturday = (2026, 12, 4), (2026, 12, 5)
    assert not is_open(night, at(*friday, 21, 59))
    assert is_open(night, at(*friday, 22)) and is_open(night, at(*saturday, 1, 59, 59))
    assert not is_open(night, at(*saturday, 2))
    assert not is_open(night, at(*friday, 1))  # Thursday night is not in it
    assert next_opening(night, at(*saturday, 3)) == at(2026, 12, 11, 22)


def test_several_windows_open_when_any_one_does_and_the_next_opening_is_the_soonest():
    two = windows({"days": "mon", "hours": "10:00-11:00"}, {"days": "mon", "hours": "14:00:05-15:00"})
    monday = (2026, 11, 30)
    assert is_open(two, at(*monday, 10, 30)) and is_open(two, at(*monday, 14, 30))
    assert next_opening(two, at(*monday, 12)) == at(*monday, 14, 0, 5)  # seconds resolution


def test_a_rollout_without_windows_or_with_deploy_now_is_never_closed():
    office = windows({"days": "mon-fri", "hours": "09:00-17:00", "tz": "Europe/Paris"})
    saturday = at(2026, 12, 5, 12)
    plain = Rollout(id="r1", group="g", release="s1")
    assert not closed(plain, saturday)
    assert closed(Rollout(id="r1", group="g", release="s1", windows=office), saturday)
    assert not closed(Rollout(id="r1", group="g", release="s1", windows=office, ignore_windows=True), saturday)
    assert waiting_reason(Rollout(id="r1", group="g", release="s1", windows=office), saturday) == \
        "waiting for its window, opens at 2026-12-07 08:00:00 UTC"
