"""The state table: groups, rollouts, tickets, releases and the audit trail in DynamoDB.

One module per noun (``groups``, ``rollouts``, ``tickets``, ``releases``, ``audit``), the
table's layout in ``table``, every update written by ``expressions``, a group's line read in
``lines`` and conductor decisions written in ``decisions`` (the only place that writes rollout
and ticket states). ``reads`` is the read strategy of a conductor step. ``Ledger`` is the one
object the rest of Skynet holds: every store's methods on one table.
"""

from __future__ import annotations

from skynet_tasks.ledger.audit import AuditStore
from skynet_tasks.ledger.decisions import Conflict, DecisionWriter
from skynet_tasks.ledger.lines import LineStore
from skynet_tasks.ledger.releases import Release, ReleaseStore


class Ledger(LineStore, DecisionWriter, ReleaseStore, AuditStore):
    """Reads and writes the state table of one env."""


__all__ = ["Conflict", "Ledger", "Release"]
