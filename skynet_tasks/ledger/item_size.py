"""The size of a DynamoDB item, and what writing it costs, by DynamoDB's documented rules.

From "DynamoDB item sizes and formats" (Amazon DynamoDB Developer Guide): an item is the sum of
its attribute names and values; a string counts its UTF-8 bytes, a number about one byte per two
significant digits plus one, a binary its raw bytes, a boolean or null one byte; a list or a map
3 bytes plus its elements, and each element one byte more (a map's element also its name). A
write costs one write unit per started KB of the larger of the item's sizes before and after it
(twice that in a transaction). moto counts sizes its own way (no overhead bytes), so these are
the figures that hold on AWS; ``tests/test_limits.py`` measures the registry and the ledger with them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's largest item
WRITE_UNIT_BYTES = 1024
_CONTAINER_OVERHEAD = 3
_ELEMENT_OVERHEAD = 1


def _number_size(text: str) -> int:
    digits = format(abs(Decimal(text)), "f").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1 + (1 if text.lstrip().startswith("-") else 0)


def value_size(value: dict[str, Any]) -> int:
    """The bytes one typed attribute value (``{"S": ...}``, ``{"M": {...}}``…) counts for, its name left out."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return _CONTAINER_OVERHEAD + sum(value_size(v) + _ELEMENT_OVERHEAD for v in inner)
    if kind == "M":
        return _CONTAINER_OVERHEAD + sum(len(k.encode()) + value_size(v) + _ELEMENT_OVERHEAD for k, v in inner.items())
    raise ValueError(f"not a DynamoDB attribute value type: {kind}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    """The bytes a whole item (attribute name → typed value) counts for against the 400 KB limit."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(before_bytes: int, after_bytes: int) -> int:
    """The write units one (non-transactional) write costs, from the item's sizes before and after it."""
    larger = max(before_bytes, after_bytes, 1)
    return -(-larger // WRITE_UNIT_BYTES)
