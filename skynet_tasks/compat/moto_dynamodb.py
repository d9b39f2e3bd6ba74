"""moto's DynamoDB transactions: roll back the items a transaction names, not a copy of every table.

moto 5's ``TransactWriteItems`` keeps a deep copy of the whole table *per item of the
transaction*, to roll back if one of them fails. Every conductor step is a transaction on the
state table, which keeps every ticket of every rollout, so a step cost time in proportion to
the table's history: a 100-instance rollout took ~0.9 s per ticket, and a long test run slowed
as it went. The patch keeps a copy of the items the transaction names instead, and puts those
back on failure: the same all-or-nothing result, at a cost in proportion to the transaction.
DynamoDB requests are served one at a time, so that no request sees a transaction half-applied,
or is undone by its rollback (moto's whole-table rollback could undo a concurrent write, too).
"""

from __future__ import annotations

import copy
import threading
from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace


def _apply(stack: ExitStack) -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    class TablesNotCopied:
        """Stands in for the ``copy`` module inside moto's backend: tables are not copied, items still are."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def named_item(backend: Any, entry: dict[str, Any]) -> tuple[Any, Any, Any, Any] | None:
        """The table, key and a copy of the item a transaction entry names; None if the entry is
        malformed (moto's own validation then refuses the transaction)."""
        try:
            ((kind, operation),) = entry.items()
            table = backend.get_table(operation["TableName"])
            hash_key, range_key = backend.get_keys_value(table, operation["Item" if kind == "Put" else "Key"])
        except (JsonRESTError, KeyError, TypeError, ValueError):
            return None
        return table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = [found for found in (named_item(self, entry) for entry in transact_items) if found is not None]
        try:
            moto_transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                if item is None:
                    table.delete_item(hash_key, range_key)
                elif range_key is None:
                    table.items[hash_key] = item
                else:
                    table.items[hash_key][range_key] = item
            raise

    one_at_a_time = threading.Lock()

    def call_action(self: Any) -> Any:
        with one_at_a_time:
            return moto_call_action(self)

    replace(stack, models, "copy", TablesNotCopied)
    moto_transact = replace(stack, models.DynamoDBBackend, "transact_write_items", transact_write_items)
    moto_call_action = replace(stack, DynamoHandler, "call_action", call_action)


PATCH = Patch("dynamodb_transactions", "moto", ">=5.2,<5.3", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
