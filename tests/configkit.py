"""The layered configuration's sources on moto's server: env ``ENV``'s config bucket and table, emptied
after each test, and helpers that fill them, merge them and sync a config directory from them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ledgerkit import bootstrapped_moto

from skynet_tasks.aws import Aws
from skynet_tasks.config.merge import merge
from skynet_tasks.config.sources import read_levels
from skynet_tasks.config.sync import ConfigDir
from skynet_tasks.resources import resolve

ENV = "cfgtest"
MOTO_ACCOUNT = "123456789012"  # the account id moto's server answers for
BUCKET = f"skynet-{ENV}-config-{MOTO_ACCOUNT}"  # as the stack names it
TABLE = f"skynet-{ENV}-config"


@pytest.fixture(scope="module", name="aws")
def config_sources() -> Iterator[Aws]:
    """The fixture ``aws``: a moto server of the module's own, with env ``ENV`` bootstrapped."""
    with bootstrapped_moto([f"{ENV}-api"], ENV) as (_, aws):
        yield aws


def empty_bucket(aws: Aws, bucket: str) -> None:
    """Delete every object in ``bucket`` (a test's leftovers)."""
    for obj in aws.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        aws.s3.delete_object(Bucket=bucket, Key=obj["Key"])


@pytest.fixture(autouse=True)
def empty_sources(aws: Aws):
    """Each test starts from an empty bucket and table."""
    yield
    empty_bucket(aws, BUCKET)
    for item in aws.dynamodb.scan(TableName=TABLE).get("Items", []):
        aws.dynamodb.delete_item(TableName=TABLE, Key={"scope": item["scope"], "path": item["path"]})


def s3_put(aws: Aws, key: str, body: str | bytes) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def dynamo_put(aws: Aws, scope: str, path: str, content: dict) -> None:
    aws.dynamodb.put_item(TableName=TABLE, Item={"scope": {"S": scope}, "path": {"S": path}, "content": content})


def merged(aws: Aws, layer: str = "api"):
    return merge(read_levels(aws.s3, aws.dynamodb, resolve(aws, ENV), layer))


def sync(aws: Aws, config: ConfigDir, layer: str = "api") -> str:
    version = config.write(merged(aws, layer))
    config.activate(version)
    return version
