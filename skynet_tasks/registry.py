"""The service registry: the ``endpoints`` table, one item per (env, layer).

Each item holds that layer's instances in a map keyed by instance id (the
original design's keys, ``env`` and ``layer``). An instance writes only its own
entry; readers ignore entries whose heartbeat is older than the allowed age,
and ``prune`` removes them. Entries are written by instances, so readers that
render them (the reverse proxy) must validate them: see ``skynet_tasks.proxy.model``.

A proxy also says which entries it refused to route to (``record_refused``): in a map
``refused`` of its layer's item, beside its entry rather than in it, because every
heartbeat rewrites the entry whole. Readers see it as the entry's ``refused_entries``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.dynamo import WritesAgainOnTransactionConflict, condition_failed, from_item, to_attr

log = logging.getLogger(__name__)

# What one proxy's list of refused entries may hold (it sits in the rp layer's item, which is at most
# 400 KB for every proxy of the env): written by an instance, so bounded when read too.
MAX_REFUSED_SHOWN = 5
MAX_REFUSAL_CHARS = 160
REFUSAL_FIELDS = ("refused_count", "refused_entries")  # written beside an entry, not in it


@dataclass(frozen=True)
class Endpoint:
    """One instance's registry entry: where it serves, what it runs, how healthy it is, its last heartbeat."""

    instance_id: str
    group: str
    address: str
    port: int
    release: str
    health: str
    heartbeat: float
    agent_version: str = ""
    config_version: str = ""
    last_task: str = ""
    last_outcome: str = ""
    # Proxies only: the time of the registry read that their running nginx configuration reflects.
    synced_at: float = 0.0
    # Proxies only: how many registry entries their last render left out, and the first of them with
    # why (``Registry.record_refused``).
    refused_count: int = 0
    refused_entries: tuple[str, ...] = ()
    # Whether its queue hears its group's SNS topic (``skynet_tasks.broadcast``); an older agent's entry has no
    # such key: false, and the conductor sends it its own message.
    hears_group: bool = False

    def age(self, now: float) -> float:
        """Seconds from the entry's last heartbeat to ``now``."""
        return now - self.heartbeat


class Registry:
    """The endpoints table, read and written through the DynamoDB client passed in."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.db = WritesAgainOnTransactionConflict(dynamodb)  # a reporter's transaction holds the layer's item
        self.table = table

    def entry_update(self, env: str, layer: str, endpoint: Endpoint) -> dict[str, Any]:
        """The UpdateItem (alone, or a transaction's ``Update``) that writes this instance's entry.

        It is refused (ValidationException) while the layer has no item yet: ``register`` makes it.
        """
        entry = {k: v for k, v in asdict(endpoint).items() if k not in ("instance_id", *REFUSAL_FIELDS)}
        return {"TableName": self.table, "Key": {"env": {"S": env}, "layer": {"S": layer}},
                "UpdateExpression": "SET instances.#id = :e", "ExpressionAttributeNames": {"#id": endpoint.instance_id},
                "ExpressionAttributeValues": {":e": to_attr(entry)}}

    def register(self, env: str, layer: str, endpoint: Endpoint) -> None:
        """Write (or refresh) this instance's entry."""
        update = self.entry_update(env, layer, endpoint)
        key = update["Key"]
        try:
            self.db.update_item(**update)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ValidationException":
                raise
            # The layer's item (or its map) does not exist yet: create it, unless a peer just did.
            try:
                self.db.put_item(TableName=self.table, Item={**key, "instances": {"M": {}}},
                                 ConditionExpression="attribute_not_exists(instances)")
            except ClientError as again:
                if not condition_failed(again):
                    raise
            self.db.update_item(**update)

    def deregister(self, env: str, layer: str, instance_id: str) -> None:
        """Remove this instance's entry; nothing happens if the layer has no item."""
        try:
            self.db.update_item(TableName=self.table, Key={"env": {"S": env}, "layer": {"S": layer}},
                                UpdateExpression="REMOVE instances.#id",
                                ExpressionAttributeNames={"#id": instance_id})
        except ClientError as error:
            if error.response["Error"]["Code"] != "ValidationException":
                raise
        self._forget_refused(env, layer, instance_id)

    def record_refused(self, env: str, layer: str, instance_id: str, refused: Collection[str]) -> bool:
        """Record the entries this proxy's last render refused (empty: none); False if it is not registered."""
        key = {"env": {"S": env}, "layer": {"S": layer}}
        shown = [str(r)[:MAX_REFUSAL_CHARS] for r in list(refused)[:MAX_REFUSED_SHOWN]]
        value = {"entries": shown, "count": len(refused), "at": time.time()}
        update = {"TableName": self.table, "Key": key, "UpdateExpression": "SET refused.#id = :r",
                  "ConditionExpression": "attribute_exists(instances.#id)",
                  "ExpressionAttributeNames": {"#id": instance_id}, "ExpressionAttributeValues": {":r": to_attr(value)}}
        for attempt in range(2):
            try:
                if attempt:
                    # The layer's item has no ``refused`` map yet: make it (unless a peer just did), write again.
                    self.db.update_item(TableName=self.table, Key=key,
                                        ConditionExpression="attribute_exists(instances)",
                                        UpdateExpression="SET refused = if_not_exists(refused, :m)",
                                        ExpressionAttributeValues={":m": {"M": {}}})
                self.db.update_item(**update)
                return True
            except ClientError as error:
                if condition_failed(error):
                    return False
                if error.response["Error"]["Code"] != "ValidationException" or attempt:
                    raise
        return False

    def _forget_refused(self, env: str, layer: str, instance_id: str) -> None:
        try:
            self.db.update_item(TableName=self.table, Key={"env": {"S": env}, "layer": {"S": layer}},
                                UpdateExpression="REMOVE refused.#id",
                                ConditionExpression="attribute_exists(refused.#id)",
                                ExpressionAttributeNames={"#id": instance_id})
        except ClientError as error:
            if not (condition_failed(error) or error.response["Error"]["Code"] == "ValidationException"):
                raise

    def set_health(self, env: str, layer: str, instance_id: str, health: str) -> bool:
        """Change one entry's health in place; False when the instance is not registered."""
        try:
            self.db.update_item(TableName=self.table, Key={"env": {"S": env}, "layer": {"S": layer}},
                                UpdateExpression="SET instances.#id.health = :h",
                                ConditionExpression="attribute_exists(instances.#id)",
                                ExpressionAttributeNames={"#id": instance_id},
                                ExpressionAttributeValues={":h": {"S": health}})
        except ClientError as error:
            if condition_failed(error) or error.response["Error"]["Code"] == "ValidationException":
                return False
            raise
        return True

    def mark_synced(self, env: str, layer: str, instance_id: str, read_at: float) -> None:
        """A proxy's configuration now reflects the registry as read at ``read_at`` (only ever moves forward)."""
        try:
            self.db.update_item(TableName=self.table, Key={"env": {"S": env}, "layer": {"S": layer}},
                                UpdateExpression="SET instances.#id.synced_at = :t",
                                ConditionExpression="attribute_exists(instances.#id) AND "
                                                    "(attribute_not_exists(instances.#id.synced_at) OR "
                                                    "instances.#id.synced_at < :t)",
                                ExpressionAttributeNames={"#id": instance_id},
                                ExpressionAttributeValues={":t": to_attr(read_at)})
        except ClientError as error:
            if not (condition_failed(error) or error.response["Error"]["Code"] == "ValidationException"):
                raise

    def find(self, env: str, instance_id: str) -> tuple[str, Endpoint] | None:
        """The layer and entry of ``instance_id`` in ``env``, stale or not."""
        for record in self.records(env):
            entry = (record.get("instances") or {}).get(instance_id)
            if entry is not None:
                layer = str(record.get("layer"))
                for endpoint in self.endpoints(env, layer):
                    if endpoint.instance_id == instance_id:
                        return layer, endpoint
        return None

    def records(self, env: str, layer: str | None = None) -> list[dict[str, Any]]:
        """Raw items of an env, or of one of its layers, as stored (untrusted: any instance writes its own entry)."""
        if layer:
            # One layer is one item: reading it alone spares reading (and paying for) every other layer's.
            item = self.db.get_item(TableName=self.table, Key={"env": {"S": env}, "layer": {"S": layer}},
                                    ConsistentRead=True).get("Item")
            return [from_item(item)] if item else []
        # Each layer's item may be up to 400 KB, so an env of a few big layers passes one 1 MB page.
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="env = :env", ExpressionAttributeValues={":env": {"S": env}},
            ConsistentRead=True)
        return [from_item(i) for page in pages for i in page.get("Items", [])]

    def endpoints(self, env: str, layer: str | None = None) -> list[Endpoint]:
        """Every entry of the env (or one layer), stale or not, that parses as an Endpoint."""
        out = []
        for record in self.records(env, layer):
            refusals = record.get("refused")
            refusals = refusals if isinstance(refusals, dict) else {}
            for instance_id, entry in (record.get("instances") or {}).items():
                try:
                    fields = {k: entry[k] for k in Endpoint.__dataclass_fields__ if k in entry}
                    fields["refused_count"], fields["refused_entries"] = _refusals(refusals.get(instance_id))
                    out.append(Endpoint(instance_id=instance_id, **fields))
                except (TypeError, KeyError):
                    log.warning("registry entry %s of %s/%s is malformed; ignored", instance_id, env,
                                record.get("layer"))
        return sorted(out, key=lambda e: e.instance_id)

    def live(self, env: str, layer: str | None, max_age: float, now: float | None = None,
             group: str | None = None) -> list[Endpoint]:
        """The entries of the env (or of one layer, or ``group``) whose heartbeat is at most ``max_age`` seconds old."""
        now = time.time() if now is None else now
        return [e for e in self.endpoints(env, layer)
                if e.age(now) <= max_age and (group is None or e.group == group)]

    def prune(self, env: str, max_age: float, now: float | None = None) -> list[str]:
        """Remove entries whose heartbeat is too old; return their instance ids."""
        now = time.time() if now is None else now
        removed = []
        for record in self.records(env):
            for instance_id, entry in (record.get("instances") or {}).items():
                heartbeat = entry.get("heartbeat") if isinstance(entry, dict) else None
                if isinstance(heartbeat, int | float) and now - heartbeat <= max_age:
                    continue
                try:
                    # Conditional: an instance that re-registered meanwhile keeps its entry.
                    self.db.update_item(
                        TableName=self.table, Key={"env": {"S": env}, "layer": {"S": record["layer"]}},
                        UpdateExpression="REMOVE instances.#id",
                        ConditionExpression="instances.#id.heartbeat = :hb" if heartbeat is not None
                        else "attribute_exists(instances.#id)",
                        ExpressionAttributeNames={"#id": instance_id},
                        **({"ExpressionAttributeValues": {":hb": to_attr(heartbeat)}} if heartbeat is not None
                           else {}),
                    )
                    removed.append(instance_id)
                    self._forget_refused(env, record["layer"], instance_id)
                except ClientError as error:
                    if not condition_failed(error):
                        raise
        if removed:
            log.info("pruned stale registry entries of env %s: %s", env, ", ".join(removed))
        return removed


def _refusals(value: object) -> tuple[int, tuple[str, ...]]:
    """A proxy's recorded refusals: how many, and the first few (untrusted: bounded, a count at least as many)."""
    if not isinstance(value, dict) or not isinstance(value.get("entries"), list):
        return 0, ()
    shown = tuple(str(e)[:MAX_REFUSAL_CHARS] for e in value["entries"][:MAX_REFUSED_SHOWN])
    count = value.get("count")
    counted = count if isinstance(count, int) and not isinstance(count, bool) else 0
    return max(len(shown), counted), shown


class LiveMembers(Collection[str]):
    """A group's members with a fresh heartbeat, read from the registry when first asked.

    The conductor asks only when a rollout is published or may be complete; most of its
    steps (a ticket taken, an update reported) never do, and in a large group the
    registry read was the costliest part of a step.
    """

    def __init__(self, registry: Registry, env: str, group: str, max_age: float) -> None:
        self.registry = registry
        self.env = env
        self.group = group
        self.max_age = max_age

    @cached_property
    def entries(self) -> tuple[Endpoint, ...]:
        """The entries of the group's instances with a fresh heartbeat (read once, then kept)."""
        return tuple(self.registry.live(self.env, None, self.max_age, group=self.group))

    @cached_property
    def members(self) -> frozenset[str]:
        """The ids of the group's instances with a fresh heartbeat."""
        return frozenset(e.instance_id for e in self.entries)

    def deaf(self, instances: Collection[str]) -> list[str]:
        """Those of ``instances`` that a broadcast to the group does not reach (``Endpoint.hears_group``)."""
        hearing = {e.instance_id for e in self.entries if e.hears_group}
        return [i for i in instances if i not in hearing]

    def __contains__(self, instance: object) -> bool:
        return instance in self.members

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)
