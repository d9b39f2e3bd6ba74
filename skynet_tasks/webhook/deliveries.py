"""Idempotency on ``X-GitHub-Delivery``, and on the push itself: a push starts its builds once.

The first request of a delivery claims it with a conditional write in the env's
state table; a redelivery gets the first one's answer (or "in progress" while
the first is still enqueueing). GitHub signs only the body, so the same signed push
can come again under a fresh delivery id (a replay): the push is claimed too, under
``push_id`` (its repository, ref and commit), in the same way. Records expire after a
week, GitHub's redelivery window being shorter; after that, the builder's checks
(``builder.push_refusal``) still refuse a push that is no longer the branch's tip.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.dynamo import condition_failed

KEEP_SECONDS = 7 * 24 * 3600


def push_id(full_name: str, ref: str, before: str, after: str, pushed_at: int | None) -> str:
    """The claim of one push of ``ref`` from ``before`` to ``after``, in the deliveries' key space.

    A replay repeats the signed body, so every part is the same. Keyed on the commit alone, a
    branch forced back to a commit it held a day ago (``before`` differs) or pushed to it again
    after that (GitHub's ``repository.pushed_at`` differs) would be taken for a replay. The id
    contains ``/``, which no delivery id may (``receiver``), so the two never collide; GitHub's
    repository names are case-insensitive, so the name is lower-cased.
    """
    return f"push/{full_name.lower()}/{ref}/{before}..{after}@{'' if pushed_at is None else pushed_at}"


class DeliveryLedger:
    """The deliveries (and pushes) seen, in the env's state table, through the DynamoDB client passed in."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.db = dynamodb
        self.table = table

    def _key(self, delivery: str) -> dict[str, Any]:
        return {"pk": {"S": f"delivery#{delivery}"}, "sk": {"S": "delivery"}}

    def claim(self, delivery: str) -> dict[str, Any] | None:
        """None if this request is the first of its delivery; else what the first one answered."""
        now = time.time()
        try:
            self.db.put_item(TableName=self.table, Item={
                **self._key(delivery), "state": {"S": "pending"}, "received_at": {"N": repr(now)},
                "expires_at": {"N": str(int(now + KEEP_SECONDS))}}, ConditionExpression="attribute_not_exists(pk)")
            return None
        except ClientError as error:
            if not condition_failed(error):
                raise
        item = self.db.get_item(TableName=self.table, Key=self._key(delivery), ConsistentRead=True).get("Item", {})
        if "response" in item:
            return dict(json.loads(item["response"]["S"]))
        return {"delivery": delivery, "duplicate": True, "state": "in progress"}

    def record(self, delivery: str, response: dict[str, Any]) -> None:
        """Store what the first request of ``delivery`` answered, for its redeliveries to get."""
        self.db.update_item(TableName=self.table, Key=self._key(delivery),
                            UpdateExpression="SET #s = :done, #r = :r",
                            ExpressionAttributeNames={"#s": "state", "#r": "response"},
                            ExpressionAttributeValues={":done": {"S": "done"}, ":r": {"S": json.dumps(response)}})

    def release(self, delivery: str) -> None:
        """Forget a claim whose enqueueing failed, so that GitHub's redelivery can try again."""
        self.db.delete_item(TableName=self.table, Key=self._key(delivery))
