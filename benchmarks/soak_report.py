"""What a soak run found: its rollouts and faults counted, and every violation, halt and lost report.

The two groups' lines of rollouts record into one ``SoakReport`` at the same time (hence its lock); the
checks after the run (``benchmarks.soak_checks``) add to it, and ``benchmarks.soak`` prints and writes it.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

# A rollout's states once it is over: what the soak waits for (``Soak.wait``), then counts here.
FINISHED = ("completed", "halted", "aborted", "superseded", "build_failed")
# The soak's own faults that may halt a rollout by design; a halt after any other is a fault not absorbed.
MAY_HALT = ("kill-updating", "drop-message", "corrupt-artifact")


@dataclass
class SoakReport:
    rollouts: int = 0
    per_group: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    faults_per_group: dict[str, collections.Counter[str]] = field(default_factory=dict)
    states: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    halts: list[str] = field(default_factory=list)  # "group fault: the conductor's reason", to tell why
    halted_by_absorbed: list[str] = field(default_factory=list)  # halts no fault of the soak explains
    aws_faults: dict[str, int] = field(default_factory=dict)  # what the local AWS served (--faults)
    reports: int = 0  # updates reported by the workers (their log lines)
    lost_reports: list[str] = field(default_factory=list)  # reported, not (or not so) in the ledger
    dropped_reports: list[str] = field(default_factory=list)  # the same, in a rollout whose message the soak deleted
    fault_of: dict[str, str] = field(default_factory=dict)  # rollout id -> the soak's fault in it
    # Completed rollouts in which a member of the group has no done ticket (it looked dead meanwhile, or
    # its take_ticket never came): not a violation (the design lets a stale member go), but worth knowing.
    completed_without: list[str] = field(default_factory=list)
    needed_operator: int = 0
    seconds: float = 0.0
    # The two groups' lines record into one report at the same time.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def finished(self, rollout_id: str, group: str, fault: str, state: str, reason: str | None,
                 may_fail: bool = False) -> None:
        with self.lock:
            self.fault_of[rollout_id] = fault
            self.rollouts += 1
            self.per_group[group] += 1
            self.states[state] += 1
            if state == "halted":
                self.halts.append(f"{group} {fault}: {reason}")
                if fault not in MAY_HALT and not may_fail:
                    self.halted_by_absorbed.append(f"{group} {fault}: {reason}")

    def fault(self, group: str, kind: str) -> None:
        with self.lock:
            self.faults[kind] += 1
            self.faults_per_group.setdefault(group, collections.Counter())[kind] += 1

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def operator_needed(self) -> None:
        with self.lock:
            self.needed_operator += 1

    def to_json(self) -> dict[str, Any]:
        return {"rollouts": self.rollouts, "rollouts_per_group": dict(self.per_group),
                "faults": dict(self.faults),
                "faults_per_group": {group: dict(kinds) for group, kinds in self.faults_per_group.items()},
                "states": dict(self.states), "halts": self.halts, "invariant_violations": self.violations,
                "halted_by_absorbed_fault": self.halted_by_absorbed, "aws_faults": self.aws_faults,
                "reports": self.reports, "lost_reports": self.lost_reports, "dropped_reports": self.dropped_reports,
                "completed_without_a_member": self.completed_without,
                "needed_operator": self.needed_operator, "seconds": round(self.seconds, 1)}

    def table(self) -> str:
        lines = [f"{'rollouts':<40}{self.rollouts}"]
        lines += [f"{'rollouts in ' + group:<40}{count}" for group, count in sorted(self.per_group.items())]
        lines += [f"{'fault ' + kind:<40}{count}" for kind, count in sorted(self.faults.items())]
        lines += [f"{'state ' + state:<40}{count}" for state, count in sorted(self.states.items())]
        lines += [f"{'aws fault ' + kind:<40}{count}" for kind, count in sorted(self.aws_faults.items())]
        lines += [f"{'invariant violations':<40}{len(self.violations)}",
                  f"{'updates reported':<40}{self.reports}", f"{'lost reports':<40}{len(self.lost_reports)}",
                  f"{'reports deleted by drop-message':<40}{len(self.dropped_reports)}",
                  f"{'halted by an absorbed fault':<40}{len(self.halted_by_absorbed)}",
                  f"{'completed without a member':<40}{len(self.completed_without)}",
                  f"{'needed an operator':<40}{self.needed_operator}", f"{'seconds':<40}{self.seconds:.0f}"]
        return "\n".join(lines)
