"""The audit trail: who did what to a group's rollouts, and when.

Each record holds the ``action``, its target (``rollout_id``, ``instance`` or ``release``), ``at``,
and who asked, as well as this can be known:

- ``actor``: ``cli:<login>`` for the CLI (the login as the operator's machine knows it: the
  operator's to choose), ``dashboard:<token name>`` for the dashboard (the name of the token that
  authenticated the request, ``skynet_tasks.monitor.tokens``);
- ``identity``: for the CLI, the ARN of the AWS identity whose credentials signed the request
  (STS ``GetCallerIdentity``, ``skynet_tasks.caller``): the authenticated one.

Strings in a record come from requests (a token's name, a typed basic-auth user name): they are
shown escaped and cut to ``MAX_FIELD`` characters here.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from skynet_tasks.dynamo import from_item, to_item
from skynet_tasks.ledger.table import Store

AUDIT_RETENTION = 400 * 86400  # seconds an operator action stays in the audit trail
MAX_FIELD = 400  # characters of a string field kept: an ARN is at most 2048, but none seen is near 400


class AuditStore(Store):
    """Operator actions of each group, newest first."""

    def record_action(self, group: str, record: dict[str, Any]) -> None:
        """Keep an operator action (who, what, when) in the group's audit trail."""
        at = float(record.get("at") or time.time())
        kept = {k: (v[:MAX_FIELD] if isinstance(v, str) else v) for k, v in record.items()}
        self.db.put_item(TableName=self.table, Item=to_item({
            "pk": f"audit#{group}", "sk": f"{at:017.6f}#{secrets.token_hex(4)}", **kept,
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
