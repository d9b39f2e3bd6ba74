"""The dashboard's charts as data (pure functions of ledger and registry views) and as escaped SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from flask import Flask, render_template

from skynet_tasks.monitor import chart_scale
from skynet_tasks.monitor.chart_fleet import fleet_releases
from skynet_tasks.monitor.chart_history import group_history
from skynet_tasks.monitor.chart_scale import AMBER, BLUE, GREEN, GREY, LIGHT_BLUE, RED
from skynet_tasks.monitor.chart_timeline import rollout_timeline
from skynet_tasks.monitor.data import summarize

pytestmark = pytest.mark.timeout(20)

SVG = "{http://www.w3.org/2000/svg}"
NOW = 1_000_000.0
ODD = '<script>alert("x")</script>&\'"'


def ticket(number, instance, state, taken, started=None, acknowledged=None, finished=None, error=None):
    return {"number": number, "instance": instance, "state": state, "taken_at": taken, "started_at": started,
            "acknowledged_at": acknowledged, "finished_at": finished, "error": error}


def halted_rollout():
    """A canary done, a ticket that failed, one cancelled behind it."""
    return {"id": "r1", "group": "prod-api", "state": "halted", "canary": "api-1", "created_at": NOW - 100,
            "tickets": [ticket(1, "api-1", "done", NOW - 90, NOW - 90, NOW - 89, NOW - 80),
                        ticket(2, "api-2", "failed", NOW - 85, NOW - 80, NOW - 79.5, NOW - 70, "health check failed"),
                        ticket(3, "api-3", "cancelled", NOW - 84, finished=NOW - 70)]}


def render(template: str, chart) -> ET.Element:
    # The dashboard's own templates folder and Flask's own autoescaping, as the pages use them.
    app = Flask("skynet_tasks.monitor.app")
    with app.app_context():
        text = render_template(template, chart=chart)
    return ET.fromstring(text)  # noqa: S314 - our own template's output, parsed to check it


# ---- the timeline ------------------------------------------------------------
def test_the_timeline_has_one_bar_per_ticket_in_ticket_order():
    rollout = halted_rollout()
    rollout["tickets"].reverse()  # whatever order the ledger's items come in

    chart = rollout_timeline(rollout, NOW)

    assert [(b.number, b.instance, b.state) for b in chart.bars] == [
        (1, "api-1", "done"), (2, "api-2", "failed"), (3, "api-3", "cancelled")]
    assert [b.y for b in chart.bars] == sorted(b.y for b in chart.bars)


def test_each_bar_goes_from_taken_to_acknowledged_to_finished():
    chart = rollout_timeline(halted_rollout(), NOW)
    canary = chart.bars[0]

    assert [(s.phase, s.seconds, s.fill) for s in canary.segments] == [
        ("waiting", 0.0, GREY), ("handoff", 1.0, LIGHT_BLUE), ("update", 9.0, GREEN)]
    # Each phase starts where the one before ends; the first ticket taken starts the axis.
    assert canary.segments[0].x == chart.plot_x
    assert canary.segments[2].x == pytest.approx(canary.segments[1].x + canary.segments[1].width, abs=0.01)
    # The last ticket to end ends the axis.
    assert chart.span == 20.0
    assert chart.bars[1].end_x == pytest.approx(chart.plot_x + chart.plot_width, abs=0.01)


def test_the_canary_is_marked_and_only_it():
    chart = rollout_timeline(halted_rollout(), NOW)

    assert [b.canary for b in chart.bars] == [True, False, False]
    assert "(canary)" in chart.bars[0].title
    svg = render("charts/timeline.svg", chart)
    marks = [g for g in svg.iter(f"{SVG}g") if "canary-mark" in g.get("class", "")]
    assert len(marks) == 1


def test_a_failed_ticket_is_red_with_its_error():
    chart = rollout_timeline(halted_rollout(), NOW)
    failed = chart.bars[1]

    assert failed.segments[-1].phase == "update" and failed.segments[-1].fill == RED
    assert "health check failed" in failed.title
    assert RED not in {s.fill for b in (chart.bars[0], chart.bars[2]) for s in b.segments}


def test_a_cancelled_ticket_shows_its_wait_in_amber():
    cancelled = rollout_timeline(halted_rollout(), NOW).bars[2]

    assert [(s.phase, s.fill, s.seconds) for s in cancelled.segments] == [("waiting", AMBER, 14.0)]
    assert not cancelled.open


def test_an_unfinished_ticket_runs_up_to_now_and_is_left_open():
    rollout = {"id": "r2", "state": "running", "canary": "api-1",
               "tickets": [ticket(1, "api-1", "done", NOW - 30, NOW - 30, NOW - 29, NOW - 20),
                           ticket(2, "api-2", "updating", NOW - 25, NOW - 20, NOW - 19),
                           ticket(3, "api-3", "waiting", NOW - 24)]}

    chart = rollout_timeline(rollout, NOW)

    updating, waiting = chart.bars[1], chart.bars[2]
    assert (updating.open, waiting.open, chart.bars[0].open) == (True, True, False)
    assert updating.segments[-1].fill == BLUE and updating.segments[-1].seconds == 19.0
    assert waiting.segments == (waiting.segments[0],) and waiting.segments[0].seconds == 24.0
    right = chart.plot_x + chart.plot_width
    assert updating.end_x == pytest.approx(right, abs=0.01) and waiting.end_x == pytest.approx(right, abs=0.01)
    svg = render("charts/timeline.svg", chart)
    open_bars = [g.get("data-number") for g in svg.iter(f"{SVG}g") if " open" in g.get("class", "")]
    assert open_bars == ["2", "3"]
    assert len([p for p in svg.iter(f"{SVG}path") if p.get("class") == "open-end"]) == 2


def test_a_ticket_without_an_acknowledgement_updates_from_its_start():
    rollout = {"id": "r3", "tickets": [ticket(1, "api-1", "done", NOW - 10, NOW - 9, None, NOW - 5)]}

    bar = rollout_timeline(rollout, NOW).bars[0]

    assert [(s.phase, s.seconds) for s in bar.segments] == [("waiting", 1.0), ("update", 4.0)]


def test_a_ticket_that_failed_at_once_still_shows_a_red_sliver():
    rollout = {"id": "r4", "tickets": [ticket(1, "api-1", "done", NOW - 100, NOW - 100, NOW - 100, NOW - 10),
                                       ticket(2, "api-2", "failed", NOW - 10, NOW - 10, NOW - 10, NOW - 10)]}

    failed = rollout_timeline(rollout, NOW).bars[1]

    assert failed.segments[-1].fill == RED and failed.segments[-1].width >= 2.0


def test_times_that_are_not_numbers_are_taken_as_missing():
    rollout = {"id": "r5", "tickets": [ticket(1, "api-1", "done", "soon", True, None, NOW - 1),
                                       {"number": "2", "instance": "x", "state": "done"}]}

    chart = rollout_timeline(rollout, NOW)

    assert [b.number for b in chart.bars] == [1]
    assert [s.phase for s in chart.bars[0].segments] == ["waiting"]


def test_a_rollout_without_tickets_has_no_bars():
    chart = rollout_timeline({"id": "r6", "state": "building", "tickets": []}, NOW)

    assert chart.bars == () and chart.span == 1.0


def test_odd_ids_in_the_timeline_are_escaped():
    rollout = halted_rollout()
    rollout["id"] = ODD
    rollout["canary"] = ODD
    rollout["tickets"][0]["instance"] = ODD
    rollout["tickets"][1]["error"] = ODD
    app = Flask("skynet_tasks.monitor.app")
    with app.app_context():
        text = render_template("charts/timeline.svg", chart=rollout_timeline(rollout, NOW))

    assert "<script>" not in text and "&lt;script&gt;" in text
    svg = ET.fromstring(text)  # noqa: S314 - our own output: still well-formed XML
    assert svg.get("data-rollout") == ODD
    first = next(g for g in svg.iter(f"{SVG}g") if g.get("data-number") == "1")
    assert first.get("data-instance") == ODD and "canary" in first.get("class")


def test_the_timeline_of_a_summarized_ledger_view_uses_the_acknowledgement():
    view = {"id": "r7", "group": "g", "state": "completed", "created_at": NOW - 50, "finished_at": NOW - 10,
            "canary": "api-1", "tickets": [ticket(1, "api-1", "done", NOW - 40, NOW - 40, NOW - 38, NOW - 30),
                                           ticket(2, "api-2", "done", NOW - 35, NOW - 30, NOW - 27, NOW - 10)]}

    chart = rollout_timeline(summarize(view, NOW), NOW)

    assert [[s.phase for s in b.segments] for b in chart.bars] == [["waiting", "handoff", "update"]] * 2
    assert chart.bars[1].segments[1].seconds == 3.0


# ---- the group's history ------------------------------------------------------
def rollout_summary(rollout_id, created, state, duration, handoffs, finished=True):
    return {"id": rollout_id, "state": state, "created_at": created, "finished_at": created + 1 if finished else None,
            "duration": duration, "tickets": [{"number": i + 1, "handoff": h} for i, h in enumerate(handoffs)]}


def test_the_history_has_one_column_per_rollout_oldest_first_in_both_panels():
    rollouts = [rollout_summary("r-c", NOW - 10, "running", 5.0, [0.2], finished=False),
                rollout_summary("r-a", NOW - 300, "completed", 40.0, [0.1, 0.3, 0.2]),
                rollout_summary("r-b", NOW - 200, "halted", 20.0, [])]

    chart = group_history("prod-api", rollouts)

    duration, handoff = chart.panels
    assert [c.rollout_id for c in duration.columns] == ["r-a", "r-b", "r-c"]
    assert [c.rollout_id for c in handoff.columns] == ["r-a", "r-b", "r-c"]
    assert [c.x for c in duration.columns] == sorted(c.x for c in duration.columns)
    assert [c.fill for c in duration.columns] == [GREEN, RED, BLUE]
    assert [c.open for c in duration.columns] == [False, False, True]
    assert [c.value for c in handoff.columns] == [0.2, None, 0.2]
    assert handoff.columns[1].height == 0.0 and "no hand-off" in handoff.columns[1].title


def test_history_columns_are_as_high_as_their_value_on_one_scale():
    chart = group_history("g", [rollout_summary("a", 1, "completed", 10.0, [1.0]),
                                rollout_summary("b", 2, "completed", 20.0, [4.0])])

    duration = chart.panels[0]
    assert duration.columns[1].height == pytest.approx(2 * duration.columns[0].height, abs=0.02)
    assert duration.top >= 20.0
    assert all(c.y + c.height == pytest.approx(duration.baseline) for c in duration.columns)


def test_odd_ids_in_the_history_are_escaped():
    text_svg = render("charts/history.svg", group_history(ODD, [rollout_summary(ODD, 1, ODD, 3.0, [0.5])]))

    assert text_svg.get("data-group") == ODD
    assert [g.get("data-rollout") for g in text_svg.iter(f"{SVG}g") if g.get("data-rollout")] == [ODD, ODD]


# ---- the fleet -------------------------------------------------------------------
def instance(group, release, stale=False):
    return {"group": group, "release": release, "stale": stale}


def test_the_fleet_has_a_bar_per_group_stacked_by_release_desired_first_stale_last():
    instances = [instance("prod-api", "b" * 40), instance("prod-api", "a" * 40), instance("prod-api", "a" * 40),
                 instance("prod-api", "c" * 40, stale=True), instance("prod-rp", "d" * 40),
                 instance("orphan", "")]

    chart = fleet_releases(["prod-api", "prod-rp", "empty"], {"prod-api": "b" * 40, "prod-rp": None}, instances)

    assert [(b.group, b.total) for b in chart.bars] == [("prod-api", 4), ("prod-rp", 1), ("empty", 0),
                                                       ("orphan", 1)]
    api = chart.bars[0]
    assert [(s.release, s.count, s.desired) for s in api.slices] == [
        ("b" * 40, 1, True), ("a" * 40, 2, False), ("stale", 1, False)]
    assert [s.fill for s in api.slices] == [GREEN, chart_scale.PALETTE[0], GREY]
    assert api.slices[0].label == "b" * 12 + " (desired)"
    assert chart.bars[1].slices[0].fill == chart_scale.PALETTE[1]
    assert [s.release for s in chart.bars[3].slices] == ["none"]
    # One scale for every group: a slice's width is its count of instances.
    unit = chart.plot_width / 4
    assert [s.width for s in api.slices] == pytest.approx([unit, 2 * unit, unit])
    assert api.slices[1].x == pytest.approx(api.slices[0].x + api.slices[0].width)


def test_an_empty_fleet_has_no_bars():
    chart = fleet_releases([], {}, [])

    assert chart.bars == () and chart.legend == ()


def test_odd_ids_in_the_fleet_are_escaped():
    chart = fleet_releases([ODD], {ODD: ODD}, [instance(ODD, ODD)])

    svg = render("charts/fleet.svg", chart)

    bar = next(g for g in svg.iter(f"{SVG}g") if g.get("data-group"))
    assert bar.get("data-group") == ODD
    assert [g.get("data-release") for g in svg.iter(f"{SVG}g") if g.get("data-release")] == [ODD]


# ---- shared ------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "label"), [(0, "0s"), (0.42, "0.4s"), (12, "12s"), (210, "3.5min"), (7200, "2.0h")])
def test_seconds_are_labelled_in_a_readable_unit(value, label):
    assert chart_scale.seconds_label(value) == label


def test_axis_ticks_are_few_round_and_within_the_axis():
    ticks = chart_scale.ticks(95.0, 500.0)

    assert [t.label for t in ticks] == ["0s", "20s", "40s", "60s", "80s"]
    assert ticks[0].at == 0 and ticks[-1].at <= 500.0
    assert len(chart_scale.ticks(10 ** 7, 500.0)) <= 7
