"""The ``stale-reads`` fault mode: DynamoDB's eventually consistent reads answer with an item's previous version.

Which AWS behaviour, and why not S3's:

- S3 has been strongly consistent since December 2020: "After a successful write of a new object, or
  an overwrite or delete of an existing object, any subsequent read request immediately receives the
  latest version of the object", listings included
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel). Only bucket
  configuration is still eventually consistent, and Skynet never changes it at run time. So S3 reads
  are never stale here: a stale ``GetObject`` after an overwrite would model an AWS that no longer exists.
- DynamoDB's reads are eventually consistent unless they ask for ``ConsistentRead``, and every read
  of a global secondary index is: "the responses may not reflect the results of a recently completed
  write operation" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html).

Here each write (``PutItem``, ``UpdateItem``, ``DeleteItem``, ``BatchWriteItem``, ``TransactWriteItems``)
remembers the version of every item it changed as it was before; for SECONDS (default 1) after the
write, an eventually consistent ``GetItem`` or ``BatchGetItem`` of the item answers that previous
version (nothing, if the item did not exist), and a ``Query`` or ``Scan`` (of the table or an index)
answers the previous version of the items it finds (leaving out those that did not exist). Not modelled:
an item deleted during the window does not come back in a ``Query``/``Scan``; reads with a projection
or ``Select`` are answered fresh. Reads with ``ConsistentRead`` are always fresh, as on AWS.
Trusted input: SECONDS comes from the operator's command line.
"""

from __future__ import annotations

import binascii
import json
import logging
import threading
import time
from contextlib import ExitStack
from typing import Any

from skynet_tasks.local.fault_counter import FaultCounter
from skynet_tasks.local.faults_conflicts import ItemKey, item_key

log = logging.getLogger(__name__)

Attributes = dict[str, Any]  # an item in DynamoDB's JSON
_PROJECTED = ("ProjectionExpression", "AttributesToGet", "Select")


class History:
    """Each item's version before its last write, for ``window`` seconds after that write."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._before: dict[ItemKey, tuple[float, Attributes | None]] = {}
        self._lock = threading.Lock()

    def written(self, key: ItemKey, previous: Attributes | None) -> None:
        """Remember that ``key`` was just written, and was ``previous`` (None: absent) before."""
        now = time.monotonic()
        with self._lock:
            self._before[key] = (now, previous)
            if len(self._before) > 10_000:  # forget what no read can be served any more
                self._before = {k: v for k, v in self._before.items() if now - v[0] < self.window}

    def stale(self, key: ItemKey | None) -> tuple[bool, Attributes | None]:
        """(True, the previous version) if ``key`` was written less than ``window`` seconds ago, else (False, None)."""
        with self._lock:
            found = self._before.get(key) if key is not None else None
        if found is None or time.monotonic() - found[0] >= self.window:
            return False, None
        return True, found[1]


def _current(backend: Any, table_name: Any, attributes: Any) -> Attributes | None:
    try:
        table = backend.get_table(table_name)
        item = table.get_item(*backend.get_keys_value(table, attributes))
    except Exception:  # noqa: BLE001 - a malformed write is moto's to refuse
        return None
    return dict(item.to_json()["Attributes"]) if item is not None else None


def _written(action: str, body: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(table, item or key) of each item the write request ``body`` changes."""
    if action == "PutItem":
        return [(body.get("TableName"), body.get("Item") or {})]
    if action in ("UpdateItem", "DeleteItem"):
        return [(body.get("TableName"), body.get("Key") or {})]
    named: list[tuple[Any, Any]] = []
    if action == "BatchWriteItem":
        for table, requests in (body.get("RequestItems") or {}).items():
            for request in requests or []:
                put, delete = request.get("PutRequest"), request.get("DeleteRequest")
                named.append((table, put["Item"] if put else (delete or {}).get("Key") or {}))
    elif action == "TransactWriteItems":
        for entry in body.get("TransactItems") or []:
            for kind, operation in entry.items():
                if kind != "ConditionCheck":
                    named.append((operation.get("TableName"), operation.get("Item" if kind == "Put" else "Key") or {}))
    return named


class StaleReads:
    """Serves eventually consistent reads from ``History``; counts each read answered with a stale item."""

    def __init__(self, history: History, counter: FaultCounter) -> None:
        self.history = history
        self.counter = counter

    def _swap(self, backend: Any, table: Any, items: list[Attributes]) -> tuple[list[Attributes], bool]:
        served, stale_any = [], False
        for item in items:
            stale, previous = self.history.stale(item_key(backend, table, item))
            stale_any |= stale
            if not stale:
                served.append(item)
            elif previous is not None:
                served.append(previous)
        return served, stale_any

    def answer(self, backend: Any, action: str, body: dict[str, Any], data: dict[str, Any]) -> bool:
        """Make the answer ``data`` to the read ``body`` stale where AWS may; whether it changed."""
        if action == "BatchGetItem":
            changed = False
            responses = data.setdefault("Responses", {})
            for table, asked in (body.get("RequestItems") or {}).items():
                if asked.get("ConsistentRead") or any(asked.get(p) for p in _PROJECTED):
                    continue
                fresh = {item_key(backend, table, item): item for item in responses.get(table, [])}
                served = []
                for key_attributes in asked.get("Keys") or []:
                    key = item_key(backend, table, key_attributes)
                    stale, previous = self.history.stale(key)
                    changed |= stale
                    item = previous if stale else fresh.get(key)
                    if item is not None:
                        served.append(item)
                responses[table] = served
            return changed
        if body.get("ConsistentRead") or any(body.get(p) for p in _PROJECTED):
            return False
        table = body.get("TableName")
        if action == "GetItem":
            stale, previous = self.history.stale(item_key(backend, table, body.get("Key") or {}))
            if stale:
                data.pop("Item", None)
                if previous is not None:
                    data["Item"] = previous
            return stale
        served, stale = self._swap(backend, table, list(data.get("Items") or []))
        if stale:
            data["Items"], data["Count"] = served, len(served)
        return stale


_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


def install(window: float, counter: FaultCounter, stack: ExitStack) -> None:
    """Make this moto server's eventually consistent DynamoDB reads stale for ``window`` seconds after a write."""
    from moto.dynamodb.responses import DynamoHandler

    from skynet_tasks.compat.patching import replace

    reads = StaleReads(History(window), counter)
    writing = threading.Lock()  # the version before a write is the one that write replaced

    def call_action(self: Any) -> Any:
        action = str(self.headers.get("X-Amz-Target", "")).rpartition(".")[2]
        if action not in _READS and action not in _WRITES:
            return moto_call_action(self)
        try:
            body = json.loads(self.body or "{}")
        except ValueError:
            return moto_call_action(self)
        backend = self.dynamodb_backend
        if action in _WRITES:
            with writing:
                named = [(item_key(backend, table, attributes), _current(backend, table, attributes))
                         for table, attributes in _written(action, body)]
                result = moto_call_action(self)
                if result[0] == 200:
                    for key, previous in named:
                        if key is not None:
                            reads.history.written(key, previous)
            return result
        status, headers, answer = moto_call_action(self)
        if status != 200:
            return status, headers, answer
        data = json.loads(answer)
        if not reads.answer(backend, action, body, data):
            return status, headers, answer
        counter.add("stale-read:dynamodb")
        log.info("faults: eventually consistent %s on %s answered with a previous version", action,
                 body.get("TableName") or sorted(body.get("RequestItems") or {}))
        stale_answer = json.dumps(data)
        headers = dict(headers)
        headers["x-amz-crc32"] = str(binascii.crc32(stale_answer.encode()))  # botocore checks it
        return status, headers, stale_answer

    # Wraps compat.moto_dynamodb's call_action; the conflicts mode (installed after) wraps this one.
    moto_call_action = replace(stack, DynamoHandler, "call_action", call_action)
