"""moto's DynamoDB responses: an item's attributes written out as moto holds them, not walked member by member.

moto 5.2 writes every response by its botocore shape (``moto.core.serialize``). An item is a map of
``AttributeValue`` structures of ten members each, and for every member of every attribute the
serializer asks its value picker which of several spellings of the member's name the value holds.
On the local cluster that was a third of moto's CPU (py-spy on a 20-instance rollout), and moto is the
one process every instance's AWS request waits on: it served hand-offs, tests and benchmarks slower.

moto hands the serializer each attribute already in DynamoDB's JSON form (``{"S": "…"}``,
``{"N": "…"}``, ``{"M": {…}}``: ``moto.dynamodb.models.utilities.dynamo_to_dict``). A map of such
attributes is written as it is. Anything else in the map (binary values, which moto holds as bytes
for its serializer to base64-encode; a value not in that form) leaves the whole map to moto's
serializer. What the response holds is the same either way; ``tests/test_compat_moto_dynamodb_json.py``
compares the two for every kind of attribute.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace

ATTRIBUTE_VALUE = "AttributeValue"  # the botocore shape of one attribute
_TEXT = ("S", "N")
_FLAGS = ("BOOL", "NULL")
_SETS = ("SS", "NS")


def as_written(value: Any) -> Any | None:
    """``value`` (one attribute, as moto holds it) as DynamoDB's JSON writes it; None if moto's serializer
    must write it (binary, or not in the form a ``{type: value}`` attribute has)."""
    if type(value) is not dict or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind in _TEXT:
        return value if type(inner) is str else None
    if kind in _FLAGS:
        return value if type(inner) is bool else None
    if kind in _SETS:
        return value if type(inner) is list and all(type(v) is str for v in inner) else None
    if kind == "M":
        written = attributes_as_written(inner)
        return None if written is None else {"M": written}
    if kind == "L" and type(inner) is list:
        items = [as_written(v) for v in inner]
        return None if any(v is None for v in items) else {"L": items}
    return None


def attributes_as_written(attributes: Any) -> dict[str, Any] | None:
    """A map of attribute names to attributes, as DynamoDB's JSON writes it; None if any needs moto's serializer."""
    if type(attributes) is not dict:
        return None
    written = {}
    for name, value in attributes.items():
        one = as_written(value)
        if type(name) is not str or one is None:
            return None
        written[name] = one
    return written


def _apply(stack: ExitStack) -> None:
    from moto.core.serialize import BaseJSONSerializer

    def _serialize_type_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if getattr(shape.value, "name", None) == ATTRIBUTE_VALUE:
            written = attributes_as_written(value)
            if written is not None:
                self._default_serialize(serialized, written, shape, key)
                return
        moto_serialize_map(self, serialized, value, shape, key)

    moto_serialize_map = replace(stack, BaseJSONSerializer, "_serialize_type_map", _serialize_type_map)


PATCH = Patch("dynamodb_json", "moto", ">=5.2,<5.3", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
