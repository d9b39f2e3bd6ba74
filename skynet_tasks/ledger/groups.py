"""Maintenance groups: the group's item (its version, desired release and line) and the list of groups."""

from __future__ import annotations

from typing import Any

from skynet_tasks.dynamo import from_item
from skynet_tasks.ledger import expressions
from skynet_tasks.ledger.table import Store, group_key


class GroupStore(Store):
    """The groups' own items."""

    def ensure_group(self, group: str, repo: str, branch: str) -> None:
        """Create the group's item if missing, and record what it deploys when known."""
        first = {"version": 0, **({"repo": repo, "branch": branch} if repo else {})}
        self.update_item(**expressions.update(self.table, group_key(group), {}, if_absent=first))

    def group_info(self, group: str) -> dict[str, Any]:
        """The group's item, read consistently; empty if the group has none yet."""
        item = self.db.get_item(TableName=self.table, Key=group_key(group), ConsistentRead=True).get("Item")
        return from_item(item) if item else {}

    def list_groups(self) -> list[str]:
        """Every group with an item, sorted."""
        groups = []
        paginator = self.db.get_paginator("scan")
        for page in paginator.paginate(TableName=self.table, FilterExpression="sk = :g",
                                       ExpressionAttributeValues={":g": {"S": "group"}},
                                       ProjectionExpression="pk"):
            groups += [item["pk"]["S"].split("#", 1)[1] for item in page.get("Items", [])]
        return sorted(groups)

    def groups_with_rollouts(self) -> list[str]:
        """Every group with an item or a rollout (one created, not yet in a line: no item yet), sorted."""
        groups: set[str] = set()
        paginator = self.db.get_paginator("scan")
        for page in paginator.paginate(TableName=self.table, FilterExpression="begins_with(pk, :g)",
                                       ExpressionAttributeValues={":g": {"S": "group#"}}, ProjectionExpression="pk"):
            groups.update(item["pk"]["S"].split("#", 1)[1] for item in page.get("Items", []))
        return sorted(groups)
