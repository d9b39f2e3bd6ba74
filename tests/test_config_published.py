"""A config-update rollout installs exactly the config it was published with, whatever is edited meanwhile.

Against moto's server, no workers: the rollout on real workers, with an edit between the canary and
the next ticket, is in ``test_config_cluster.py``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from configkit import empty_bucket
from ledgerkit import bootstrapped_moto

from skynet_tasks.aws import Aws
from skynet_tasks.config import retention
from skynet_tasks.config.apply import sync_config
from skynet_tasks.config.merge import merge
from skynet_tasks.config.paths import ConfigError
from skynet_tasks.config.publish import push, start_config_rollouts
from skynet_tasks.config.retention import prune_published, to_prune
from skynet_tasks.config.snapshot import snapshot_key, store_snapshot
from skynet_tasks.config.sources import level_for, read_levels
from skynet_tasks.config.sync import ConfigDir
from skynet_tasks.ledger import Ledger
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.states import RolloutKind

pytestmark = pytest.mark.timeout(60)

ENV = "pubtest"
BUCKET = f"skynet-{ENV}-config-123456789012"  # as the stack names it, in moto's account


@pytest.fixture(scope="module")
def aws():
    with bootstrapped_moto([f"{ENV}-api"], ENV) as (_, on_moto):
        yield on_moto


@pytest.fixture(autouse=True)
def emptied_after(aws: Aws):
    yield
    empty_bucket(aws, BUCKET)


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


# ---- the published configs a layer keeps (skynet_tasks.config.retention)

def test_all_but_the_newest_and_those_in_use_are_pruned_and_ties_with_the_last_kept_stay():
    at = [datetime(2026, 12, 1, 12, 0, n, tzinfo=UTC) for n in range(25)]
    objects = [(f"k{n:02d}", f"v{n:02d}", at[n]) for n in range(25)]

    assert to_prune(objects, 20, in_use=()) == ["k00", "k01", "k02", "k03", "k04"]
    assert to_prune(objects, 20, in_use={"v01", "v03"}) == ["k00", "k02", "k04"]
    assert to_prune(objects, 30, in_use=()) == []
    tied = [*objects, ("k-tie", "v-tie", at[5])]  # as new as the 20th newest (k05): S3 says seconds only
    assert to_prune(tied, 20, in_use=()) == ["k00", "k01", "k02", "k03", "k04"]


def published_keys(aws: Aws, layer: str = "api") -> list[str]:
    folder = f"Layers/{layer}/.published/"
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=folder).get("Contents", [])
    return sorted(o["Key"][len(folder):] for o in listed)


def publish_version(aws: Aws, greeting: str) -> str:
    put(aws, "Layers/api/app.json", json.dumps({"greeting": greeting}))
    return publish(aws)


def test_a_prune_keeps_the_newest_and_what_an_unfinished_config_rollout_names(aws):
    ledger = Ledger(aws.dynamodb, resolve(aws, ENV).state_table)
    # Given three older snapshots: one a config rollout still waiting to start names, one a failed rollout's
    in_use, failed, unused = (publish_version(aws, g) for g in ("in-use", "failed", "unused"))
    ledger.create_rollout("r-prune-waits", f"{ENV}-api", in_use, RolloutKind.CONFIG, {"layer": "api"})
    ledger.create_rollout("r-prune-failed", f"{ENV}-api", failed, RolloutKind.CONFIG, {"layer": "api"})
    ledger.fail_build("r-prune-failed", "gone")
    put(aws, "Layers/api/.published/notes.txt", "not a snapshot")
    put(aws, "Layers/api/.published/sub/x.json", "{}")
    put(aws, "Layers/web/.published/other.json", "{}")
    time.sleep(1.05)  # S3's LastModified counts seconds
    newest = publish_version(aws, "newest")

    # When the api layer keeps one snapshot
    pruned = prune_published(aws.s3, BUCKET, ledger, ENV, "api", keep=1)

    # Then the newest and the one in use stay, and nothing that is not a snapshot of the layer is touched
    assert sorted(pruned) == sorted(f"Layers/api/.published/{v}.json" for v in (failed, unused))
    assert published_keys(aws) == sorted([f"{in_use}.json", f"{newest}.json", "notes.txt", "sub/x.json"])
    assert published_keys(aws, "web") == ["other.json"]


class NoMessages:
    """A messenger that sends nothing (the rollouts' messages are not what is tested here)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def maintenance(self, group: str, body: object, dedup: str) -> None:
        self.sent.append(group)


class DeletesRefused:
    """The S3 client of an operator who may not delete: every DeleteObject is refused."""

    def __init__(self, s3: object) -> None:
        self.s3 = s3

    def delete_object(self, **_: object) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteObject")

    def __getattr__(self, name: str) -> object:
        return getattr(self.s3, name)


def push_config(aws: Aws, s3: object) -> list:
    resources = resolve(aws, ENV)
    registry = Registry(aws.dynamodb, resources.endpoints_table)
    registry.register(ENV, "api", Endpoint("i-prune", f"{ENV}-api", "10.0.0.9", 8080, "", "healthy", time.time()))
    ledger = Ledger(aws.dynamodb, resources.state_table)
    return start_config_rollouts(SimpleNamespace(s3=s3, dynamodb=aws.dynamodb), ledger, registry,  # type: ignore[arg-type]
                                 NoMessages(), resources, "api", 60.0)  # type: ignore[arg-type]


def test_a_config_push_prunes_its_layers_older_snapshots_and_a_refused_prune_leaves_the_push_done(
        aws, monkeypatch, caplog):
    monkeypatch.setattr(retention, "KEEP_PUBLISHED", 1)
    old = publish_version(aws, "old")
    time.sleep(1.05)
    put(aws, "Layers/api/app.json", json.dumps({"greeting": "refused"}))

    # When the operator may not delete, Then the rollout still starts and the old snapshot stays, said in the log
    with caplog.at_level(logging.WARNING, logger="skynet_tasks.config.publish"):
        (refused,) = push_config(aws, DeletesRefused(aws.s3))
    assert f"{old}.json" in published_keys(aws) and "could not prune published snapshots" in caplog.text
    time.sleep(1.05)
    put(aws, "Layers/api/app.json", json.dumps({"greeting": "pushed"}))

    # When a push may delete, Then only its own snapshot and those rollouts still name are kept
    (started,) = push_config(aws, aws.s3)

    assert published_keys(aws) == sorted({f"{refused.version}.json", f"{started.version}.json"})
