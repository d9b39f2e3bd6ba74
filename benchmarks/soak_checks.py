"""The soak's checks, after the run, of what the ledger and the instances recorded (per group, then the
workers' reports); what they find goes into the soak's ``SoakReport``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.overlap import Span, batch_of, policy_of, updating_at_once
from skynet_tasks.artifacts import Manifest

if TYPE_CHECKING:
    from benchmarks.soak import Lane, Soak

# What tasks/update.py logs once its report is decided (tasks/report.py) or, failing that, sent.
REPORTED = re.compile(r"rollout (\S+): ticket (\d+) on (\S+) (succeeded|failed)")


def check(soak: Soak) -> None:
    for lane in soak.lanes:
        check_group(soak, lane)
    check_reports(soak)
    if soak.cluster.faults and soak.cluster.moto is not None:
        soak.report.aws_faults = soak.cluster.moto.fault_counts()


def check_reports(soak: Soak) -> None:
    """Every update a worker reported is in the ledger as reported (see "lost reports" in ``benchmarks.soak``)."""
    reported: set[tuple[str, int, str, bool]] = set()
    for log in soak.cluster.dir.glob("instances/*/logs/worker.log"):
        for found in REPORTED.finditer(log.read_text(errors="replace")):
            reported.add((found[1], int(found[2]), found[3], found[4] == "succeeded"))
    soak.report.reports = len(reported)
    views: dict[str, dict[str, Any]] = {}
    for rollout_id, number, instance, ok in sorted(reported):
        view = views.setdefault(rollout_id, soak.ledger.rollout_view(rollout_id) or {})
        if view.get("state") == "aborted":
            continue  # the soak stepped in: counted as needing an operator
        ticket = next((t for t in view.get("tickets", []) if t["number"] == number), None)
        wanted = "done" if ok else "failed"
        if ticket is None or ticket["instance"] != instance or ticket["state"] != wanted:
            got = f"{ticket['instance']} {ticket['state']}" if ticket else "no such ticket"
            fault = soak.report.fault_of.get(rollout_id, "?")
            lost = (f"{rollout_id}#{number} ({fault}) on {instance} reported {'ok' if ok else 'failed'}, "
                    f"ledger: {got}")
            # drop-message deletes a maintenance message on purpose: a report that went to the queue, at times
            (soak.report.dropped_reports if fault == "drop-message" else soak.report.lost_reports).append(lost)


def check_group(soak: Soak, lane: Lane) -> None:
    group = lane.group
    spans: list[Span] = []
    for rollout_id in soak.ledger.recent_rollouts(group, 500):
        view = soak.ledger.rollout_view(rollout_id) or {}
        mine = sorted(view.get("tickets", []), key=lambda t: t["number"])
        holders = [t["instance"] for t in mine]
        if len(holders) != len(set(holders)):
            soak.report.violation(f"{group} {rollout_id}: an instance holds two tickets")
        strangers = sorted(set(holders) - {i.id for i in soak.members(lane)})
        if strangers:
            soak.report.violation(f"{group} {rollout_id}: tickets held by non-members {strangers}")
        if view.get("state") == "completed":
            missing = sorted({i.id for i in soak.members(lane)}
                             - {t["instance"] for t in mine if t["state"] == "done"})
            if missing:
                soak.report.completed_without.append(f"{group} {rollout_id}: {missing}")
        started = [t for t in mine if t.get("started_at")]
        for earlier, later in zip(started, started[1:], strict=False):
            if later["started_at"] < earlier["started_at"] and later.get("attempts", 1) == 1:
                soak.report.violation(f"{group} {rollout_id}: ticket {later['number']} started before "
                                      f"ticket {earlier['number']}")
        policy = policy_of(rollout_id, view)
        spans += [Span(t["started_at"], t.get("finished_at") or float("inf"), rollout_id, t["number"],
                       batch_of(policy, t["number"])) for t in started]
    for violation in updating_at_once(group, spans):
        faults = sorted({soak.report.fault_of.get(s.rollout_id, "the first release")
                         for s in spans if s.rollout_id in violation})
        soak.report.violation(f"{violation} [fault: {', '.join(faults)}]")
    for instance in soak.members(lane):
        current = Path(instance.root) / "current"
        if not current.exists():
            continue
        marker = current / ".skynet-release"
        sha = os.readlink(current).rsplit("/", 1)[-1]
        release = soak.ledger.release(group, sha)
        if not marker.exists() or release is None or Manifest.from_json(marker.read_text()).sha256 != \
                release.sha256:
            soak.report.violation(f"{group}: {instance.id} runs {sha[:12]} without a verified artifact")
