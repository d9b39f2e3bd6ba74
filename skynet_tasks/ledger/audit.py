"""The audit trail: who did what to a group's rollouts, and when."""

from __future__ import annotations

import secrets
import time
from typing import Any

from skynet_tasks.dynamo import from_item, to_item
from skynet_tasks.ledger.table import Store

AUDIT_RETENTION = 400 * 86400  # seconds an operator action stays in the audit trail


class AuditStore(Store):
    """Operator actions of each group, newest first."""

    def record_action(self, group: str, record: dict[str, Any]) -> None:
        """Keep an operator action (who, what, when) in the group's audit trail."""
        at = float(record.get("at") or time.time())
        self.db.put_item(TableName=self.table, Item=to_item({
            "pk": f"audit#{group}", "sk": f"{at:017.6f}#{secrets.token_hex(4)}", **record,
            "expires_at": int(at + AUDIT_RETENTION)}))

    def actions(self, group: str, limit: int = 50) -> list[dict[str, Any]]:
        """The group's latest operator actions, newest first."""
        # Deliberately bounded: the newest ``limit`` actions; the paginator still goes on past a 1 MB page.
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"audit#{group}"}}, ScanIndexForward=False,
            PaginationConfig={"MaxItems": limit, "PageSize": limit})
        return [{k: v for k, v in from_item(i).items() if k not in ("pk", "sk")}
                for page in pages for i in page.get("Items", [])]
