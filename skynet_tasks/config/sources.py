"""Reading the config levels from the S3 config bucket and the DynamoDB config table.

Levels, lowest first: ``Global``, ``Environments/<env>``, ``Layers/<layer>``. At each
level the S3 prefix is read first and the DynamoDB items of the same scope above it:
the table is the preferred place and overrides the bucket.

DynamoDB layout (the env's ``config`` table): hash key ``scope`` (the level, as
``Global``, ``Environments/prod``, ``Layers/api``), range key ``path`` (the file's
path in that level), and ``content``: a string or binary (the file's bytes) or a map
or list (written as JSON, at most ``nesting.MAX_NESTING`` levels deep). Any other type is
refused: it has no file form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from skynet_tasks import names
from skynet_tasks.config.nesting import MAX_NESTING, check_attribute
from skynet_tasks.config.paths import ConfigError, check_config_path
from skynet_tasks.dynamo import from_item
from skynet_tasks.resources import EnvResources

MAX_FILE_BYTES = 1024 * 1024
MAX_LEVEL_BYTES = 16 * 1024 * 1024
# A layer's published configs (``skynet_tasks.config.snapshot``): kept under the layer's prefix, never config.
SNAPSHOT_FOLDER = ".published"


@dataclass(frozen=True)
class Piece:
    """One config file as one source holds it."""

    path: str
    data: bytes
    source: str  # where it came from, for ``config show`` and error messages


@dataclass(frozen=True)
class Level:
    """One config level: its name (global, environment, layer) and its scope in the bucket and the table."""

    name: str  # global, environment, layer
    scope: str  # S3 prefix without its slash, and the DynamoDB scope

    @property
    def prefix(self) -> str:
        """The level's key prefix in the config bucket."""
        return f"{self.scope}/"


def levels(env: str, layer: str | None) -> list[Level]:
    """The levels that apply to an instance of ``env``/``layer``, lowest precedence first."""
    names.check_env(env)
    result = [Level("global", "Global"), Level("environment", f"Environments/{env}")]
    if layer:
        names.check_name_part("layer", layer)
        result.append(Level("layer", f"Layers/{layer}"))
    return result


def level_for(env: str, layer: str | None, global_: bool = False) -> Level:
    """The one level a push writes: the layer's if given, else the environment's (or Global)."""
    if global_:
        return Level("global", "Global")
    return levels(env, layer)[-1]


def read_s3_level(s3: Any, bucket: str, level: Level) -> dict[str, Piece]:
    """The files under ``level`` in the config bucket; ConfigError for an unsafe path or a file or level too large."""
    pieces: dict[str, Piece] = {}
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=level.prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") or key.startswith(f"{level.prefix}{SNAPSHOT_FOLDER}/"):
                continue  # a folder marker made by a console; the published configs
            source = f"s3://{bucket}/{key}"
            path = check_config_path(key[len(level.prefix):], source)
            _check_size(obj.get("Size", 0), source)
            total += int(obj.get("Size", 0))
            if total > MAX_LEVEL_BYTES:
                raise ConfigError(f"{level.scope} in s3://{bucket} holds more than {MAX_LEVEL_BYTES} bytes")
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_FILE_BYTES + 1)
            _check_size(len(data), source)
            pieces[path] = Piece(path, data, source)
    return pieces


def read_dynamo_level(dynamodb: Any, table: str, level: Level) -> dict[str, Piece]:
    """The items of ``level`` in the config table, as files.

    ConfigError for an unsafe path, a content with no file form, a file too large, or one nested too deep.
    """
    pieces: dict[str, Piece] = {}
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table, KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "scope"},
        ExpressionAttributeValues={":s": {"S": level.scope}}, ConsistentRead=True)
    try:
        for page in pages:  # each page is requested (and parsed) as the loop reaches it
            for item in page.get("Items", []):
                raw_path = item.get("path", {}).get("S", "")
                source = f"dynamodb://{table}/{level.scope}/{raw_path}"
                path = check_config_path(raw_path, source)
                data = item_content(item.get("content"), source)
                _check_size(len(data), source)
                pieces[path] = Piece(path, data, source)
    except RecursionError:
        # botocore's parser recurses into each attribute: an item nested tens of thousands deep
        # (DynamoDB refuses more than 32 levels; an emulator or a future limit may not) ends here.
        raise ConfigError(f"dynamodb://{table}/{level.scope}: an item is nested too deep to be read "
                          f"(more than {MAX_NESTING} levels)") from None
    return pieces


def item_content(attribute: dict[str, Any] | None, source: str) -> bytes:
    """A config item's ``content`` as file bytes; ConfigError for a type with no file form."""
    if not attribute:
        raise ConfigError(f"{source}: no 'content' attribute")
    kind = next(iter(attribute))
    if kind == "S":
        return str(attribute["S"]).encode()
    if kind == "B":
        return bytes(attribute["B"])
    if kind in ("M", "L"):
        check_attribute(attribute, source)  # before the deserializer, which recurses
        value = from_item({"v": attribute})["v"]
        return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()
    shown = {"N": "a number", "SS": "a string set", "NS": "a number set", "BS": "a binary set",
             "BOOL": "a boolean", "NULL": "null"}.get(kind, kind)
    raise ConfigError(f"{source}: 'content' is {shown}, which cannot be written as a config file "
                      "(use a string, binary, map or list)")


def _check_size(size: int, source: str) -> None:
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_FILE_BYTES} bytes")


def read_levels(s3: Any, dynamodb: Any, resources: EnvResources, layer: str | None) -> list[dict[str, Piece]]:
    """Every source of the env's ``layer``, lowest precedence first (each level: S3, then DynamoDB)."""
    result = []
    for level in levels(resources.env, layer):
        result.append(read_s3_level(s3, resources.config_bucket, level))
        result.append(read_dynamo_level(dynamodb, resources.config_table, level))
    return result

