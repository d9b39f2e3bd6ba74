"""Recent task runs per instance, kept bounded in the env's state table.

Layout: pk ``runs#<instance>``, sk ``<started_at zero-padded>#<task id>``. Each
write deletes the instance's runs beyond the newest ``KEEP``, and every item
carries ``expires_at`` (the state table's TTL attribute), so an instance that
disappears leaves nothing behind for long.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from skynet_tasks.dynamo import from_item, to_item

log = logging.getLogger(__name__)

KEEP = 50
RETENTION = 7 * 86400  # seconds a run stays if nothing newer pushes it out first
# Trimming reads the instance's whole history: once every few runs, not after every one (each
# task's record would otherwise cost a query too, next to the conductor's reads). Between two
# trims an instance keeps at most KEEP + TRIM_EVERY - 1 runs.
TRIM_EVERY = 10


@dataclass(frozen=True)
class TaskRun:
    """One run of a task on an instance: what ran, how it ended and how long it took."""

    instance: str
    task: str
    state: str
    started_at: float
    runtime: float | None
    error: str | None
    task_id: str


def _pk(instance: str) -> str:
    return f"runs#{instance}"


class TaskRuns:
    """Records and reads task runs; one DynamoDB client and table, passed in.

    A recorder trims an instance's history at its first record and every ``trim_every`` records
    after that, so keep one per process.
    """

    def __init__(self, dynamodb: Any, table: str, keep: int = KEEP, trim_every: int = TRIM_EVERY) -> None:
        self.db = dynamodb
        self.table = table
        self.keep = keep
        self.trim_every = trim_every
        self._untrimmed: dict[str, int] = {}

    def record(self, instance: str, task: str, state: str, started_at: float, runtime: float | None,
               error: str | None, task_id: str | None = None) -> bool:
        """Store one run and trim the instance's history; False (logged) if the table could not be written.

        A failing observer must never fail the task it observes, so storage errors are swallowed here.
        """
        task_id = task_id or secrets.token_hex(6)
        item = {"pk": _pk(instance), "sk": f"{started_at:017.6f}#{task_id}", "instance": instance, "task": task,
                "state": state, "started_at": started_at, "runtime": runtime,
                "error": (error or "")[:2000] or None, "task_id": task_id,
                "expires_at": int(time.time() + RETENTION)}
        try:
            self.db.put_item(TableName=self.table, Item=to_item({k: v for k, v in item.items() if v is not None}))
            untrimmed = self._untrimmed.get(instance, 0)
            if untrimmed % self.trim_every == 0:
                self._trim(instance)
            self._untrimmed[instance] = untrimmed + 1
        except (ClientError, BotoCoreError) as failure:
            log.warning("task run %s of %s on %s not recorded: %s", task_id, task, instance, failure)
            return False
        return True

    def _trim(self, instance: str) -> None:
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _pk(instance)}}, ProjectionExpression="pk, sk",
            ScanIndexForward=False)
        keys = [item for page in pages for item in page.get("Items", [])]
        for key in keys[self.keep:]:
            self.db.delete_item(TableName=self.table, Key=key)

    def recent(self, instance: str, limit: int = 20) -> list[TaskRun]:
        """The instance's newest runs, newest first."""
        # Deliberately bounded: the newest runs only (an error message makes a run up to 2 KB).
        count = max(1, min(limit, self.keep))
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _pk(instance)}}, ScanIndexForward=False,
            PaginationConfig={"MaxItems": count, "PageSize": count})
        runs = []
        for raw in (item for page in pages for item in page.get("Items", [])):
            values = from_item(raw)
            runs.append(TaskRun(instance=instance, task=str(values.get("task", "")),
                                state=str(values.get("state", "")), started_at=float(values.get("started_at", 0)),
                                runtime=values.get("runtime"), error=values.get("error"),
                                task_id=str(values.get("task_id", ""))))
        return runs
