"""The merged config a config-update rollout was published with, kept so every ticket installs exactly it.

``skynet config push`` merges each layer's config and starts a rollout of that version; an
instance's turn may come minutes later, after someone edited the config again. So the
merged files are stored when the rollout is published, content-addressed by their version,
at ``Layers/<layer>/.published/<version>.json`` in the env's config bucket: readable by that
layer's instances only (their role reads ``Layers/<layer>/``), and never taken for a config
file (a config path has no hidden segment, and the sources skip the folder).

Untrusted input: anyone who can write the bucket can write a snapshot, as they can write the
config itself. A snapshot is used only if its files merge to the version the rollout (in the
state table) names, and every path is checked as a config path is.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.config.merge import MergedConfig, MergedFile, check_placement
from skynet_tasks.config.paths import ConfigError, check_config_path
from skynet_tasks.config.sources import MAX_FILE_BYTES, MAX_LEVEL_BYTES, SNAPSHOT_FOLDER, level_for

# Every level of a layer (Global, Environment, Layer; S3 and DynamoDB) at its largest, base64-encoded.
MAX_SNAPSHOT_BYTES = 6 * MAX_LEVEL_BYTES * 4 // 3 + 1024 * 1024


def snapshot_key(env: str, layer: str, version: str) -> str:
    """Where the config ``version`` of ``layer`` is kept in the env's config bucket."""
    return f"{level_for(env, layer).prefix}{SNAPSHOT_FOLDER}/{version}.json"


def store_snapshot(s3: Any, bucket: str, env: str, layer: str, merged: MergedConfig) -> str:
    """Keep ``merged`` as its layer's published config; return its version (the same content: the same object)."""
    body = {"version": merged.version,
            "files": {path: {"data": base64.b64encode(item.data).decode(), "source": item.source}
                      for path, item in sorted(merged.files.items())}}
    s3.put_object(Bucket=bucket, Key=snapshot_key(env, layer, merged.version), Body=json.dumps(body).encode(),
                  ServerSideEncryption="AES256", ContentType="application/json")
    return merged.version


def load_snapshot(s3: Any, bucket: str, env: str, layer: str, version: str) -> MergedConfig | None:
    """The published config ``version`` of ``layer``; None if none was kept (a rollout published before).

    ConfigError if the snapshot is malformed, too large, or its files are not the version it is kept as.
    """
    key = snapshot_key(env, layer, version)
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_SNAPSHOT_BYTES + 1)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    source = f"s3://{bucket}/{key}"
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_SNAPSHOT_BYTES} bytes")
    try:
        files = json.loads(data)["files"]
        merged = MergedConfig({check_config_path(path, source): _file(path, entry, source)
                               for path, entry in files.items()})
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ConfigError(f"{source} is not a published config") from None
    check_placement(merged.files)
    if merged.version != version:
        raise ConfigError(f"{source} holds config {merged.version}, not {version}: refused")
    return merged


def _file(path: str, entry: dict[str, Any], source: str) -> MergedFile:
    data = base64.b64decode(entry["data"], validate=True)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{source}: {path} is larger than {MAX_FILE_BYTES} bytes")
    return MergedFile(path, data, str(entry.get("source") or source))
