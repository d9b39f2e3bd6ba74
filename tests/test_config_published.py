"""A config-update rollout installs exactly the config it was published with, whatever is edited meanwhile.

Against moto's server, no workers: the rollout on real workers, with an edit between the canary and
the next ticket, is in ``test_config_cluster.py``.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.config.apply import sync_config
from skynet_tasks.config.merge import merge
from skynet_tasks.config.paths import ConfigError
from skynet_tasks.config.publish import push
from skynet_tasks.config.snapshot import snapshot_key, store_snapshot
from skynet_tasks.config.sources import level_for, read_levels
from skynet_tasks.config.sync import ConfigDir
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(60)

ENV = "pubtest"
BUCKET = f"skynet-{ENV}-config-123456789012"  # as the stack names it, in moto's account


@pytest.fixture(scope="module")
def aws():
    moto = MotoServer.start()
    try:
        aws = aws_for(moto.environment())
        bootstrap_env(aws, resolve(aws, ENV), [f"{ENV}-api"])
        yield aws
    finally:
        moto.stop()


@pytest.fixture(autouse=True)
def empty_bucket(aws: Aws):
    yield
    for obj in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        aws.s3.delete_object(Bucket=BUCKET, Key=obj["Key"])


def put(aws: Aws, key: str, text: str) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())


def publish(aws: Aws) -> str:
    """What ``skynet config push`` does for the api layer before it starts the rollout."""
    merged = merge(read_levels(aws.s3, aws.dynamodb, resolve(aws, ENV), "api"))
    return store_snapshot(aws.s3, BUCKET, ENV, "api", merged)


def instance(aws: Aws, tmp_path) -> SimpleNamespace:
    return SimpleNamespace(aws=aws, resources=resolve(aws, ENV),
                           settings=SimpleNamespace(config_dir=tmp_path / "config", layer="api"))


def greeting(ctx: SimpleNamespace) -> str:
    return json.loads((ctx.settings.config_dir / "app.json").read_text())["greeting"]


def test_a_ticket_after_a_later_edit_installs_the_published_config(aws, tmp_path):
    # Given config A published with a rollout, then an edit (uploaded, or pushed with --no-rollout)
    put(aws, "Layers/api/app.json", '{"greeting": "A"}')
    put(aws, f"Environments/{ENV}/secrets/token.secret", "s3cret")
    published = publish(aws)
    put(aws, "Layers/api/app.json", '{"greeting": "B"}')
    ctx = instance(aws, tmp_path)

    # When an instance's turn comes, Then it installs A, secret included, not what the sources hold now
    synced = sync_config(ctx, published)  # type: ignore[arg-type]
    assert synced.version == published and ConfigDir(ctx.settings.config_dir).current_version() == published
    assert greeting(ctx) == "A"
    assert (ctx.settings.config_dir / "secrets" / "token.secret").stat().st_mode & 0o777 == 0o640  # the app's group's
    # ...while a sync that is not a rollout's (at boot) takes the sources as they are
    assert greeting(ctx) == "A" and sync_config(ctx).version != published  # type: ignore[arg-type]
    assert greeting(ctx) == "B"


def test_a_published_config_is_never_read_as_config_and_a_push_keeps_it(aws, tmp_path):
    put(aws, "Layers/api/app.json", '{"greeting": "A"}')
    published = publish(aws)

    resources = resolve(aws, ENV)
    assert sorted(merge(read_levels(aws.s3, aws.dynamodb, resources, "api")).files) == ["app.json"]
    change = push(aws.s3, aws.dynamodb, resources, level_for(ENV, "api"), {"app.json": b'{"greeting": "C"}'}, "s3")
    assert change.removed == [] and change.changed == ["app.json"]
    assert aws.s3.get_object(Bucket=BUCKET, Key=snapshot_key(ENV, "api", published))  # still there


def test_a_published_config_whose_content_is_not_its_version_is_refused_and_nothing_changes(aws, tmp_path):
    put(aws, "Layers/api/app.json", '{"greeting": "A"}')
    ctx = instance(aws, tmp_path)
    before = sync_config(ctx).version  # type: ignore[arg-type]
    published = publish(aws)
    key = snapshot_key(ENV, "api", published)
    stored = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    stored["files"]["app.json"]["data"] = "eyJncmVldGluZyI6ICJldmlsIn0="  # {"greeting": "evil"}
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(stored).encode())

    with pytest.raises(ConfigError, match=f"not {published}: refused"):
        sync_config(ctx, published)  # type: ignore[arg-type]
    for hostile in ({"files": {"../escape": {"data": ""}}}, {"files": {"a.txt": {"data": "not base64!"}}}, [1]):
        aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(hostile).encode())
        with pytest.raises(ConfigError):
            sync_config(ctx, published)  # type: ignore[arg-type]
    assert ConfigDir(ctx.settings.config_dir).current_version() == before and greeting(ctx) == "A"


def test_a_rollout_without_a_kept_config_installs_it_only_if_the_sources_still_merge_to_it(aws, tmp_path):
    # A rollout published by an older Skynet kept nothing: its version is all there is
    put(aws, "Layers/api/app.json", '{"greeting": "A"}')
    ctx = instance(aws, tmp_path)
    version = merge(read_levels(aws.s3, aws.dynamodb, resolve(aws, ENV), "api")).version

    assert sync_config(ctx, version).version == version  # type: ignore[arg-type]
    put(aws, "Layers/api/app.json", '{"greeting": "B"}')
    with pytest.raises(ConfigError, match=f"config {version} of this rollout was not kept, and the config is now"):
        sync_config(ctx, version)  # type: ignore[arg-type]
    assert greeting(ctx) == "A"
