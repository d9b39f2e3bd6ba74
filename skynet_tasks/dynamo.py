"""Conversion between Python values and DynamoDB's typed attribute values.

boto3's own serializers do the work; this only maps floats to Decimal (DynamoDB
numbers) on the way in and Decimals back to int/float on the way out.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return value


def to_attr(value: Any) -> dict[str, Any]:
    """One Python value as a DynamoDB attribute value (floats as numbers)."""
    return dict(_serializer.serialize(_to_dynamo(value)))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item from a dict; ``None`` values are left out (DynamoDB has no use for them)."""
    return {k: to_attr(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a dict of Python values (numbers as int or float)."""
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def _code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _reasons(error: Exception) -> list[str]:
    reasons = getattr(error, "response", {}).get("CancellationReasons") or []
    return [str((reason or {}).get("Code", "None")) for reason in reasons]


def condition_failed(error: Exception) -> bool:
    """True if a boto3 ClientError is DynamoDB refusing a write because its condition failed.

    The item changed since it was read (or exists already): the caller's answer is the
    write's answer, "no". A cancelled transaction without reasons counts too (moto gives none).
    """
    code = _code(error)
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = _reasons(error)
        return not reasons or "ConditionalCheckFailed" in reasons
    return False


def transaction_conflict(error: Exception) -> bool:
    """True if DynamoDB cancelled a request because a transaction on the same item was in progress.

    That is a transaction that overlapped another one (``TransactionConflict`` among its
    cancellation reasons), or a single write that met a transaction in progress
    (``TransactionConflictException``). Nothing was written, and nothing was refused: the
    same request may be sent again. botocore does not retry either of them.
    """
    code = _code(error)
    if code == "TransactionConflictException":
        return True
    return code == "TransactionCanceledException" and "TransactionConflict" in _reasons(error)


def lost_to_another_write(error: Exception) -> bool:
    """True if another write got there first: a failed condition or a transaction conflict.

    For a decision conditioned on a version, both mean the same: read again and decide again.
    """
    return condition_failed(error) or transaction_conflict(error)


# A single write that meets a transaction in progress on its item is sent again this many times at most:
# a conductor's transaction is milliseconds long, and a few tries with a growing pause outlast it.
TRANSACTION_CONFLICT_ATTEMPTS = 5


def again_on_transaction_conflict(write: Callable[..., Any], attempts: int, **request: Any) -> dict[str, Any]:
    """Send the single-item ``write`` (``update_item``, ``put_item``, ``delete_item``) with ``request``, and send it
    again, a little later each time, while DynamoDB refuses it for a transaction in progress on its item
    (nothing written, nothing refused: ``transaction_conflict``); its condition is evaluated again each time."""
    for attempt in range(attempts):
        try:
            return dict(write(**request))
        except ClientError as error:
            if not transaction_conflict(error) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1) + secrets.randbelow(30) / 1000)
    raise AssertionError("unreachable")  # the loop returns or raises


class WritesAgainOnTransactionConflict:
    """A DynamoDB client whose single-item writes are sent again while a transaction holds their item.

    The endpoints table's item of a layer holds every instance's entry, and a reporter's transaction
    writes its own entry there: an instance registering meanwhile (at boot, every heartbeat) met
    ``TransactionConflictException``, and a worker whose boot registration met it exited.
    """

    WRITES = frozenset({"put_item", "update_item", "delete_item"})

    def __init__(self, client: Any, attempts: int = TRANSACTION_CONFLICT_ATTEMPTS) -> None:
        self.client = client
        self.attempts = attempts

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name not in self.WRITES:
            return attribute
        return functools.partial(again_on_transaction_conflict, attribute, self.attempts)
