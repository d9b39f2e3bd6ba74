"""The short fault-injection soak (benchmarks/soak.py) in CI: each kind of fault once in each of the two
maintenance groups (their lines of rollouts running at the same time), then the invariants, group by group.

The long soak is ``.venv/bin/python -m benchmarks.soak --rollouts 50``.
"""

from __future__ import annotations

import pytest

from benchmarks.soak import FAULTS, SECOND_LAYER, run_soak

pytestmark = pytest.mark.timeout(900)


def test_every_kind_of_fault_leaves_the_invariants_intact(tmp_path):
    groups = ("local-api", f"local-{SECOND_LAYER}")

    report = run_soak(tmp_path / "soak", rollouts=2 * len(FAULTS), seed=7, say=lambda _: None)

    print(report.table())
    assert report.violations == []
    assert all(report.faults_per_group[group][kind] == 1 for group in groups for kind in FAULTS)
    assert all(report.per_group[group] >= len(FAULTS) - 1 for group in groups)  # corrupt-artifact may find nothing
    assert report.rollouts >= 2 * len(FAULTS) - 2
    assert report.needed_operator == 0, report.table()
