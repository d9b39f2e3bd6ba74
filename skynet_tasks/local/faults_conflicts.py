"""The ``conflicts`` fault mode: DynamoDB transactions that overlap in time cancel each other, as on AWS.

DynamoDB runs transactions concurrently and cancels one that meets another in progress on the
same item, where moto (patched by ``compat.moto_dynamodb``) serializes every request. Here each
``TransactWriteItems`` first holds the keys of the items it names for a while (the hold), then
is applied; during the hold:

- another ``TransactWriteItems`` naming a held item is cancelled at once with
  ``TransactionCanceledException``, reason ``TransactionConflict`` for each held item and
  ``None`` for the others (it holds nothing and changes nothing);
- a ``PutItem``, ``UpdateItem`` or ``DeleteItem`` on a held item is refused with
  ``TransactionConflictException``.

Reads are served as usual: DynamoDB serves a plain read of an item in a transaction with the
last committed value, which moto has until the transaction is applied.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from contextlib import ExitStack
from typing import Any

from skynet_tasks.local.fault_counter import FaultCounter

log = logging.getLogger(__name__)

ItemKey = tuple[str, str]  # (table, the key's attribute values as canonical JSON)

_SINGLE_WRITES = {"PutItem": "Item", "UpdateItem": "Key", "DeleteItem": "Key"}


class HeldItems:
    """The items that transactions in progress hold (a transaction may name an item once only)."""

    def __init__(self) -> None:
        self._held: Counter[ItemKey] = Counter()
        self._lock = threading.Lock()

    def hold(self, keys: list[ItemKey | None]) -> list[bool]:
        """Hold every key, or none of them if any is held already; which of them were held."""
        with self._lock:
            busy = [key is not None and self._held[key] > 0 for key in keys]
            if not any(busy):
                self._held.update(key for key in keys if key is not None)
            return busy

    def release(self, keys: list[ItemKey | None]) -> None:
        """Let go of keys this transaction held."""
        with self._lock:
            self._held.subtract(key for key in keys if key is not None)
            self._held = +self._held  # drop the zeros

    def is_held(self, key: ItemKey | None) -> bool:
        """Whether a transaction in progress holds ``key``."""
        with self._lock:
            return key is not None and self._held[key] > 0


def item_key(backend: Any, table_name: Any, attributes: Any) -> ItemKey | None:
    """The key of the item that ``attributes`` (an item or a key) names in ``table_name``; None if unknown
    (moto's own validation then answers the request as it would have)."""
    try:
        table = backend.get_table(table_name)
        names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        return str(table_name), json.dumps([attributes[name] for name in names], sort_keys=True)
    except Exception:  # noqa: BLE001 - a missing table or malformed request is moto's to refuse
        return None


def _transaction_keys(backend: Any, body: dict[str, Any]) -> list[ItemKey | None]:
    keys: list[ItemKey | None] = []
    for entry in body.get("TransactItems") or []:
        try:
            ((kind, operation),) = entry.items()
            keys.append(item_key(backend, operation.get("TableName"), operation["Item" if kind == "Put" else "Key"]))
        except (AttributeError, KeyError, TypeError, ValueError):
            keys.append(None)
    return keys


def _error(code: str, message: str, **extra: Any) -> tuple[int, dict[str, str], str]:
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **extra}
    return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body)


def install(hold: float, counter: FaultCounter, stack: ExitStack) -> None:
    """Cancel overlapping DynamoDB transactions in this moto server, each holding its items ``hold`` seconds."""
    from moto.dynamodb.responses import DynamoHandler

    from skynet_tasks.compat.patching import replace

    held = HeldItems()

    def call_action(self: Any) -> Any:
        action = str(self.headers.get("X-Amz-Target", "")).rpartition(".")[2]
        if action != "TransactWriteItems" and action not in _SINGLE_WRITES:
            return moto_call_action(self)
        try:
            body = json.loads(self.body or "{}")
        except ValueError:
            return moto_call_action(self)
        if action in _SINGLE_WRITES:
            key = item_key(self.dynamodb_backend, body.get("TableName"), body.get(_SINGLE_WRITES[action]) or {})
            if held.is_held(key):
                counter.add("TransactionConflictException")
                log.info("faults: %s on %s met a transaction in progress: TransactionConflictException", action, key)
                return _error("TransactionConflictException", "Transaction is ongoing for the item")
            return moto_call_action(self)
        keys = _transaction_keys(self.dynamodb_backend, body)
        busy = held.hold(keys)
        if any(busy):
            counter.add("TransactionConflict")
            log.info("faults: TransactWriteItems on %s met another in progress: TransactionConflict",
                     [key for key, b in zip(keys, busy, strict=True) if b])
            reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"} if b
                       else {"Code": "None"} for b in busy]
            shown = ", ".join("TransactionConflict" if b else "None" for b in busy)
            return _error("TransactionCanceledException",
                          f"Transaction cancelled, please refer cancellation reasons for specific reasons [{shown}]",
                          CancellationReasons=reasons)
        try:
            time.sleep(hold)  # the transaction is in progress: its items are held
            return moto_call_action(self)
        finally:
            held.release(keys)

    # Wraps compat.moto_dynamodb's call_action (installed first): the hold is outside its one-at-a-time lock.
    moto_call_action = replace(stack, DynamoHandler, "call_action", call_action)
