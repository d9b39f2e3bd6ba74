"""One builder of DynamoDB update requests: every update the ledger makes is written with it.

Attribute names and values always travel as placeholders (``#a0``/``:a0``), so that an
attribute named like a reserved word (``state``, ``line``) or a value from a message never
becomes part of an expression's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from skynet_tasks.dynamo import to_attr


def update(table: str, key: dict[str, Any], values: Mapping[str, Any], *, remove: Iterable[str] = (),
           if_absent: Mapping[str, Any] | None = None, condition: str | None = None,
           names: Mapping[str, str] | None = None, condition_values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The arguments of an ``update_item`` (or a transaction's ``Update``) of the item at ``key``.

    ``values`` are set; ``if_absent`` are set only where the item has no such attribute yet;
    ``remove`` are removed. ``condition``, if given, is written over its own placeholders:
    ``names`` (``#x`` → attribute) and ``condition_values`` (``:x`` → Python value).
    """
    removed = list(remove)
    kept = dict(if_absent or {})
    attributes = [*values, *kept, *removed]
    placeholder = {f"#a{i}": name for i, name in enumerate(attributes)}
    sets = [f"#a{i} = :a{i}" for i in range(len(values))]
    sets += [f"#a{i} = if_not_exists(#a{i}, :a{i})" for i in range(len(values), len(values) + len(kept))]
    expression = "SET " + ", ".join(sets) if sets else ""
    if removed:
        first = len(values) + len(kept)
        expression += " REMOVE " + ", ".join(f"#a{first + i}" for i in range(len(removed)))
    request: dict[str, Any] = {
        "TableName": table, "Key": key, "UpdateExpression": expression.strip(),
        "ExpressionAttributeNames": {**placeholder, **(names or {})},
    }
    expression_values = {f":a{i}": to_attr(v) for i, v in enumerate([*values.values(), *kept.values()])}
    expression_values |= {k: to_attr(v) for k, v in (condition_values or {}).items()}
    if expression_values:
        request["ExpressionAttributeValues"] = expression_values
    if condition:
        request["ConditionExpression"] = condition
    return request


def fields(table: str, key: dict[str, Any], values: Mapping[str, Any], **conditions: Any) -> dict[str, Any]:
    """An update that sets each attribute of ``values`` and removes those whose value is None."""
    present = {k: v for k, v in values.items() if v is not None}
    return update(table, key, present, remove=[k for k, v in values.items() if v is None], **conditions)
