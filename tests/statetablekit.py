"""The state table on moto's server, for the ledger's tests: env ``local``'s ledger on a new server, and one
conductor step written on it from a full read of the group.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from ledgerkit import bootstrapped_moto

from skynet_tasks import names
from skynet_tasks.conductor import Group, decide
from skynet_tasks.ledger import Ledger


@contextmanager
def state_table_ledger(groups: list[str]) -> Iterator[Ledger]:
    """The ledger of env ``local``'s state table on a new moto server bootstrapped for ``groups``; stopped on exit."""
    with bootstrapped_moto(groups) as (_, aws):
        yield Ledger(aws.dynamodb, names.state_table("local"))


def step(ledger: Ledger, event: object, group: str = "local-api", members: tuple[str, ...] = ("a", "b")) -> Group:
    """One conductor step on a full read of the group, as the conductor takes it."""
    before = ledger.load_group(group)
    decision = decide(before, event, time.time(), members)  # type: ignore[arg-type]
    ledger.write_decision(before, decision)
    return decision.group
