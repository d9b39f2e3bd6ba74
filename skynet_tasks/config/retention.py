"""How many published configs a layer keeps: the newest few, and every one a rollout may still install.

Each ``skynet config push`` that starts rollouts keeps the merged config it published
(``skynet_tasks.config.snapshot``); nothing removed them, so a layer's ``.published/`` folder grew
by one object per distinct config pushed. After a push, ``prune_published`` deletes every
snapshot of the layer but the ``KEEP_PUBLISHED`` newest (by S3's ``LastModified``, whose
second-resolution ties with the last one kept are kept too) and those a config-update rollout
that is not over names: one in its group's line (running, paused or halted: it may be resumed
or retried), or among the group's newest rollouts (``RECENT_ROLLOUTS``: created, not yet in
the line). Finding the groups scans the state table: pushes are rare.

Untrusted: the folder's keys (anyone who writes the bucket can add one); only objects named
``<version>.json`` directly in the layer's folder are ever deleted, and a version that a rollout
names is kept whatever its object holds.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from skynet_tasks.config.sources import SNAPSHOT_FOLDER, level_for
from skynet_tasks.ledger import Ledger
from skynet_tasks.states import RolloutKind, RolloutState

log = logging.getLogger(__name__)

KEEP_PUBLISHED = 20
RECENT_ROLLOUTS = 10


def versions_in_use(ledger: Ledger, layer: str) -> set[str]:
    """The config versions of ``layer`` that a config-update rollout not yet over may still install."""
    versions: set[str] = set()
    for group in ledger.groups_with_rollouts():
        ids = [*ledger.group_info(group).get("line", []), *ledger.recent_rollouts(group, RECENT_ROLLOUTS)]
        for rollout_id in dict.fromkeys(ids):
            record = ledger.rollout_item(rollout_id) or {}
            if record.get("kind") != str(RolloutKind.CONFIG) or "release" not in record:
                continue
            if record.get("layer", layer) != layer:  # a record without a layer may be this one's: kept
                continue
            if not RolloutState(record.get("state", RolloutState.RUNNING)).finished:
                versions.add(str(record["release"]))
    return versions


def to_prune(objects: Iterable[tuple[str, str, datetime]], keep: int, in_use: Collection[str]) -> list[str]:
    """The keys to delete among ``objects`` (key, version, last modified): all but the ``keep`` newest
    (and those as new as the last of them), and but the versions ``in_use``."""
    newest_first = sorted(objects, key=lambda o: o[2], reverse=True)
    if len(newest_first) <= keep:
        return []
    oldest_kept = newest_first[keep - 1][2] if keep > 0 else None
    return sorted(key for key, version, modified in newest_first[keep:]
                  if version not in in_use and (oldest_kept is None or modified < oldest_kept))


def published_objects(s3: Any, bucket: str, env: str, layer: str) -> list[tuple[str, str, datetime]]:
    """Every snapshot object of ``layer`` in the env's config bucket: (key, version, last modified)."""
    folder = f"{level_for(env, layer).prefix}{SNAPSHOT_FOLDER}/"
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(folder):]
            if "/" not in name and name.endswith(".json") and len(name) > len(".json"):
                found.append((obj["Key"], name[:-len(".json")], obj["LastModified"]))
    return found


def prune_published(s3: Any, bucket: str, ledger: Ledger, env: str, layer: str,
                    keep: int | None = None) -> list[str]:
    """Delete the snapshots of ``layer`` that no rollout needs and are not among the ``keep`` newest
    (``KEEP_PUBLISHED``); return the keys deleted."""
    keep = KEEP_PUBLISHED if keep is None else keep
    doomed = to_prune(published_objects(s3, bucket, env, layer), keep, versions_in_use(ledger, layer))
    for key in doomed:
        s3.delete_object(Bucket=bucket, Key=key)
    if doomed:
        log.info("config of %s/%s: %d published snapshots pruned (kept the newest %d and those in use)",
                 env, layer, len(doomed), keep)
    return doomed
