"""The rollout benchmark's figures from its measured rollouts (pure functions: no cluster)."""

from __future__ import annotations

import pytest

from benchmarks.rollout import against_floor, measure, summarize

pytestmark = pytest.mark.timeout(30)


def run(handoffs: list[float], to_decision: list[float], to_ack: list[float]) -> dict[str, object]:
    """One measured rollout, as ``benchmarks.rollout.measure`` gives it."""
    return {"state": "completed", "instances": len(handoffs) + 1, "total": 10.0, "build": 1.0, "canary": 2.0,
            "updates": [1.0] * (len(handoffs) + 1), "handoffs": handoffs, "to_decision": to_decision,
            "to_ack": to_ack, "overhead": 1.0, "lineup": 1.5, "taken_after_canary_report": 0}


def test_the_steady_median_leaves_out_each_rollouts_first_hand_off():
    # Given two rollouts of three instances, whose first hand-offs (the canaries' reports) are slow
    runs = [run([0.5, 0.1], [0.3, 0.04], [0.2, 0.06]), run([0.6, 0.12], [0.3, 0.05], [0.3, 0.07])]

    figures = summarize(runs)

    # Then the median of all hand-offs is a slow one, the steady median is not
    assert figures["handoff_p50_s"] == 0.5
    assert figures["handoff_after_first_p50_s"] == 0.1
    assert figures["first_handoff_mean_s"] == 0.55


def test_the_parts_of_a_hand_off_are_reported_as_multiples_of_the_floor():
    figures = summarize([run([0.5, 0.1, 0.1], [0.3, 0.04, 0.04], [0.2, 0.06, 0.06])])

    ratios = against_floor(figures, {"floor_s": 0.04})

    assert ratios["handoff_after_first_p50_x_floor"] == 2.5
    assert ratios["report_to_decision_p50_x_floor"] == 1.0
    assert ratios["decision_to_ack_p50_x_floor"] == 1.5


def test_the_members_still_lining_up_when_the_canary_reports_are_counted():
    # Given a canary that updated from 10 to 11 s, and members whose tickets were taken before and after
    view = {"state": "completed", "requested_at": 9.0, "finished_at": 14.0, "build_duration": 0.5, "tickets": [
        {"number": 1, "taken_at": 10.0, "started_at": 10.0, "acknowledged_at": 10.0, "reported_at": 11.0},
        {"number": 2, "taken_at": 10.4, "started_at": 11.1, "acknowledged_at": 11.2, "reported_at": 12.0},
        {"number": 3, "taken_at": 11.3, "started_at": 12.1, "acknowledged_at": 12.2, "reported_at": 13.0}]}

    measured = measure(view)

    # Then one member was still lining up at the canary's report, and the line took 1.3 s to form
    assert measured["taken_after_canary_report"] == 1
    assert measured["lineup"] == pytest.approx(1.3)
    assert summarize([measured])["taken_after_canary_report"] == 1


def test_the_machine_figures_tell_the_benchmarks_own_cpu_from_moto_and_the_instances():
    import subprocess
    import sys
    import time

    from benchmarks.machine import MachineLoad

    # Given a stand-in for moto burning CPU in its own process, and this process (the benchmark) burning some too
    moto = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # (started)
        with MachineLoad(moto.pid) as machine:
            end = time.process_time() + 0.5
            while time.process_time() < end:
                pass
            time.sleep(0.5)
    finally:
        moto.kill()
        moto.wait()
    figures = machine.summary()

    # Then each is counted as its own, and neither as the instances'
    assert figures["benchmark_cores_used"] >= 0.1
    assert figures["moto_cores_used"] >= 0.1
    busy = figures["cpu_busy_share"] * figures["cores"]
    assert figures["instances_cores_used"] <= busy - figures["benchmark_cores_used"] - figures["moto_cores_used"] + 0.05


class IssuedTickets:
    """A ledger whose rollout has issued one more ticket each time its record is read."""

    def __init__(self) -> None:
        self.reads = 0

    def rollout_item(self, rollout_id: str) -> dict[str, object]:
        self.reads += 1
        return {"last_number": self.reads}


def test_a_held_canary_is_let_go_once_every_member_holds_a_ticket(tmp_path, monkeypatch):
    from benchmarks import line_gate

    monkeypatch.setattr(line_gate, "POLL_EVERY", 0.001)
    gate = line_gate.LineGate(tmp_path / "line-formed", members=3)
    ledger = IssuedTickets()

    # Given a release whose canary waits for the gate (the sample app's hold-on.txt names ticket 1)
    assert gate.release_files() == {"hold-on.txt": f"ticket:1 {tmp_path / 'line-formed'}\n"}

    gate.wait_and_open(ledger, "r1")  # type: ignore[arg-type]

    # Then the gate opened when the third ticket was issued, not before
    assert ledger.reads == 3
    assert (tmp_path / "line-formed").exists()


def test_a_held_canary_is_let_go_when_the_line_never_forms(tmp_path, monkeypatch):
    from benchmarks import line_gate

    monkeypatch.setattr(line_gate, "POLL_EVERY", 0.001)
    gate = line_gate.LineGate(tmp_path / "line-formed", members=1000)

    waited = gate.wait_and_open(IssuedTickets(), "r1", timeout=0.05)  # type: ignore[arg-type]

    # Then the gate opens at the timeout anyway: the canary is never held for good
    assert 0.05 <= waited < 5
    assert (tmp_path / "line-formed").exists()
