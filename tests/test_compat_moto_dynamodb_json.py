"""``compat.moto_dynamodb_json``: moto's DynamoDB responses say the same with the patch, at a fraction of the work.

These run moto's own response serializer in this process (no AWS is emulated here): the same
response, written by moto's shape walk and by the patch, must be the same JSON, for every kind of
attribute. The server the tests and the cluster use runs with the patch (``local.moto_main``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.core.serialize import AttributePicker, XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model

from skynet_tasks.compat import moto_dynamodb_json

SERVICE = get_service_model("dynamodb")
EVERY_KIND = {
    "pk": {"S": "rollout#r1"}, "version": {"N": "12"}, "published": {"BOOL": True}, "reason": {"NULL": True},
    "members": {"SS": ["api-1", "api-2"]}, "sizes": {"NS": ["1", "2.5"]},
    "policy": {"M": {"max_parallel": {"L": [{"S": "1"}, {"N": "25"}]}, "empty": {"M": {}}}},
    "line": {"L": [{"S": "r1"}, {"M": {"odd name.with#chars": {"S": "é ✓ \"quoted\""}}}, {"L": []}]},
}


def written(operation: str, result: dict[str, Any], picker: AttributePicker | None = None) -> dict[str, Any]:
    """The body moto writes for ``operation``'s ``result``, as the client reads it."""
    serializer = get_serializer_class("dynamodb", SERVICE.protocol)(
        operation_model=SERVICE.operation_model(operation), pretty_print=False,
        value_picker=picker or XFormedAttributePicker())
    return json.loads(serializer.serialize(result)["body"])


RESULTS = {
    "GetItem": {"Item": EVERY_KIND},
    "Query": {"Items": [EVERY_KIND, {"pk": {"S": "r2"}}], "Count": 2, "ScannedCount": 2,
              "LastEvaluatedKey": {"pk": {"S": "r2"}, "sk": {"S": "ticket#000002"}}},
    "TransactGetItems": {"Responses": [{"Item": EVERY_KIND}, {}]},
    "UpdateItem": {"Attributes": {"version": {"N": "13"}}},
    "GetItem with binary": {"Item": {"pk": {"S": "config#x"}, "blob": {"B": b"\x00\xffbytes"},
                                      "nested": {"M": {"b": {"BS": [b"a", b"b"]}}}}},
}


@pytest.mark.parametrize("case", RESULTS)
def test_a_response_says_the_same_with_the_patch(case):
    operation = case.split(" ")[0]
    assert not moto_dynamodb_json.PATCH.installed
    by_moto = written(operation, RESULTS[case])
    with moto_dynamodb_json.PATCH.applied():
        assert written(operation, RESULTS[case]) == by_moto


class Counting(XFormedAttributePicker):
    """moto's value picker, counting how often the serializer asks it for a member's value."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def __call__(self, context: Any) -> Any:
        self.asked += 1
        return super().__call__(context)


def test_still_needed_moto_asks_for_every_member_of_every_attribute():
    assert not moto_dynamodb_json.PATCH.installed
    picker = Counting()
    written("GetItem", {"Item": EVERY_KIND}, picker)
    assert picker.asked >= 10 * len(EVERY_KIND)  # AttributeValue has ten members, each asked for


def test_with_the_patch_an_items_attributes_are_written_without_asking():
    picker = Counting()
    with moto_dynamodb_json.PATCH.applied():
        body = written("GetItem", {"Item": EVERY_KIND}, picker)
    assert picker.asked <= 3 and body == {"Item": EVERY_KIND}  # the output's members only: Item, ConsumedCapacity…


@pytest.mark.parametrize("attribute", [{"B": b"x"}, {"S": 1}, {"S": "a", "N": "1"}, {"SS": ["a", 2]},
                                       {"M": {"x": {"B": b"y"}}}, {"L": [{"BOOL": "yes"}]}, "S", {"XX": "a"}])
def test_an_attribute_not_in_dynamodbs_json_form_is_left_to_moto(attribute):
    assert moto_dynamodb_json.attributes_as_written({"a": attribute}) is None
