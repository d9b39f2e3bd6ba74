"""The short fault-injection soak (benchmarks/soak.py) in CI: one rollout per kind of fault, then the invariants.

The long soak is ``.venv/bin/python -m benchmarks.soak --rollouts 50``.
"""

from __future__ import annotations

import pytest

from benchmarks.soak import FAULTS, run_soak

pytestmark = pytest.mark.timeout(900)


def test_every_kind_of_fault_leaves_the_invariants_intact(tmp_path):
    report = run_soak(tmp_path / "soak", rollouts=len(FAULTS), seed=7, say=lambda _: None)

    print(report.table())
    assert report.violations == []
    assert all(report.faults[kind] >= 1 for kind in FAULTS)
    assert report.rollouts >= len(FAULTS)
    assert report.needed_operator == 0, report.table()
