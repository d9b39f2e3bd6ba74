"""The operator's side: reading a local config tree, what a push would change, pushing it, rolling it out.

Trusted: the operator running the command. Still checked, because a tree is easy to
get wrong and every instance would write it: file names (``paths.check_config_path``),
symlinks (refused: they could publish a file from outside the tree), JSON validity,
and secrets (a ``*.pem``/``*.key``/``secrets/`` file readable by group or others in the
tree is refused: it would be published from a copy that already lost its mode).
"""

from __future__ import annotations

import difflib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.config.merge import merge
from skynet_tasks.config.paths import ConfigError, check_config_path, is_secret
from skynet_tasks.config.retention import prune_published
from skynet_tasks.config.snapshot import store_snapshot
from skynet_tasks.config.sources import MAX_FILE_BYTES, Level, Piece, read_dynamo_level, read_levels, read_s3_level
from skynet_tasks.deploys import StartedRollout, start_member_rollouts
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.registry import Registry
from skynet_tasks.resources import EnvResources
from skynet_tasks.states import RolloutKind

log = logging.getLogger(__name__)

CONFIG_UPDATE_TIMEOUT = 120.0
STORES = ("s3", "dynamodb")


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its config path; ConfigError (naming the file) for anything unsafe."""
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    tree: dict[str, bytes] = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            full = Path(folder) / name
            info = full.lstat()
            relative = full.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                raise ConfigError(f"{relative} is a symlink; a config tree holds plain files only")
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"{relative} is not a regular file")
            check_config_path(relative, str(full))
            if is_secret(relative) and info.st_mode & 0o077:
                raise ConfigError(f"{relative} is a secret but its mode is {stat.S_IMODE(info.st_mode):04o}: "
                                  f"`chmod 600 {full}` first (instances write keys 0600)")
            if info.st_size > MAX_FILE_BYTES:
                raise ConfigError(f"{relative} is larger than {MAX_FILE_BYTES} bytes")
            tree[relative] = full.read_bytes()
    # The merge refuses invalid JSON and paths that collide once placed: check before anything is uploaded.
    merge([{path: Piece(path, data, f"{root}/{path}") for path, data in tree.items()}])
    return tree


@dataclass
class Change:
    """What a push changes in a level: paths added, changed and removed, and a diff of each changed one."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)  # path -> unified diff (never of a secret)

    @property
    def empty(self) -> bool:
        """Whether nothing is added, changed or removed."""
        return not (self.added or self.changed or self.removed)

    def lines(self) -> list[str]:
        """The change as printable lines (``+``, ``~``, ``-`` per path, then the diffs), or ``no change``."""
        out = [f"+ {p}" for p in self.added] + [f"~ {p}" for p in self.changed] + [f"- {p}" for p in self.removed]
        for path in self.changed:
            if self.details.get(path):
                out.append(self.details[path])
        return out or ["no change"]

    def to_dict(self) -> dict[str, Any]:
        """The added, changed and removed paths, for JSON output (diffs left out)."""
        return {"added": self.added, "changed": self.changed, "removed": self.removed}


def stored_level(s3: Any, dynamodb: Any, resources: EnvResources, level: Level, store: str) -> dict[str, bytes]:
    """What ``level`` holds in ``store`` (s3: the env's config bucket; dynamodb: its config table)."""
    if store == "s3":
        pieces = read_s3_level(s3, resources.config_bucket, level)
    else:
        pieces = read_dynamo_level(dynamodb, resources.config_table, level)
    return {path: piece.data for path, piece in pieces.items()}


def compare(before: dict[str, bytes], after: dict[str, bytes]) -> Change:
    """What turns ``before`` into ``after``; a changed file's diff shows no secret's content and no binary's bytes."""
    change = Change(added=sorted(set(after) - set(before)), removed=sorted(set(before) - set(after)))
    for path in sorted(set(before) & set(after)):
        if before[path] != after[path]:
            change.changed.append(path)
            change.details[path] = _text_diff(path, before[path], after[path])
    return change


def _text_diff(path: str, old: bytes, new: bytes) -> str:
    if is_secret(path):
        return f"  ({path} is a secret: content not shown)"
    try:
        old_text, new_text = old.decode(), new.decode()
    except UnicodeDecodeError:
        return f"  ({path} is binary: {len(old)} -> {len(new)} bytes)"
    return "".join(difflib.unified_diff(old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                        f"a/{path}", f"b/{path}")).rstrip("\n")


def push(s3: Any, dynamodb: Any, resources: EnvResources, level: Level, tree: dict[str, bytes], store: str) -> Change:
    """Make ``level`` in ``store`` hold exactly ``tree``; return what changed."""
    change = compare(stored_level(s3, dynamodb, resources, level, store), tree)
    for path in change.added + change.changed:
        if store == "s3":
            s3.put_object(Bucket=resources.config_bucket, Key=f"{level.prefix}{path}", Body=tree[path],
                          ServerSideEncryption="AES256")
        else:
            content = _dynamo_content(tree[path])
            dynamodb.put_item(TableName=resources.config_table,
                              Item={"scope": {"S": level.scope}, "path": {"S": path}, "content": content})
    for path in change.removed:
        if store == "s3":
            s3.delete_object(Bucket=resources.config_bucket, Key=f"{level.prefix}{path}")
        else:
            dynamodb.delete_item(TableName=resources.config_table,
                                 Key={"scope": {"S": level.scope}, "path": {"S": path}})
    return change


def _dynamo_content(data: bytes) -> dict[str, Any]:
    try:
        return {"S": data.decode()}
    except UnicodeDecodeError:
        return {"B": data}


def start_config_rollouts(aws: Any, ledger: Ledger, registry: Registry, messenger: Messenger,
                          resources: EnvResources, layer: str | None, heartbeat_max_age: float,
                          source: str = "cli") -> list[StartedRollout]:
    """A config-update rollout for every group of the env (of ``layer`` only, if given) with live members.

    The rollout's release is the merged config's version for that layer, kept as it is now
    (``skynet_tasks.config.snapshot``): every ticket installs that, whatever is edited meanwhile.
    Then the layer's older kept configs that no rollout needs are deleted (``config.retention``).
    """
    env = resources.env
    layers = sorted({str(r.get("layer")) for r in registry.records(env)} if layer is None else {layer})
    started = []
    for each_layer in layers:
        if each_layer == "rp":
            continue  # the proxy layer's nginx config is rendered from the registry, not from config files
        version = store_snapshot(aws.s3, resources.config_bucket, env, each_layer,
                                 merge(read_levels(aws.s3, aws.dynamodb, resources, each_layer)))
        started += start_member_rollouts(ledger, registry, messenger, env, each_layer, RolloutKind.CONFIG, version,
                                         CONFIG_UPDATE_TIMEOUT, heartbeat_max_age, source)
        try:
            prune_published(aws.s3, resources.config_bucket, ledger, env, each_layer)
        except ClientError as error:  # the rollouts started: a snapshot left over costs cents; the next push prunes
            log.warning("config of %s/%s: could not prune published snapshots: %s", env, each_layer, error)
    return started
