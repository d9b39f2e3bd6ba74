"""Layered configuration against moto's server: sources, precedence, sync, bad input, pushes.

No workers here: the config-update rollout on real workers is in ``test_config_cluster.py``; a sync
that meets a failing disk or values nested absurdly deep is in ``test_config_sync_faults.py``.
"""

from __future__ import annotations

import json
import os
import shlex
import stat

import pytest
from configkit import BUCKET, ENV, TABLE, config_sources, dynamo_put, empty_sources, merged, s3_put, sync  # noqa: F401 - the fixtures aws and (autouse) empty_sources

from skynet_tasks.config.paths import ConfigError, check_config_path
from skynet_tasks.config.publish import compare, push, read_tree
from skynet_tasks.config.sources import Level
from skynet_tasks.config.sync import ConfigDir, git_ssh_environment
from skynet_tasks.resources import resolve


def tree_of(config: ConfigDir) -> dict[str, bytes]:
    return {p.relative_to(config.path).as_posix(): p.read_bytes()
            for p in config.path.rglob("*") if p.is_file() and p.name != ".skynet-config"}


def test_each_level_overrides_the_one_below_and_dynamodb_overrides_s3_at_each_level(aws):
    # Given app.json at all six places, each setting its own key plus the shared "who"
    places = [("s3", "Global"), ("dynamodb", "Global"), ("s3", f"Environments/{ENV}"),
              ("dynamodb", f"Environments/{ENV}"), ("s3", "Layers/api"), ("dynamodb", "Layers/api")]
    for rank, (store, scope) in enumerate(places):
        value = {"who": f"{store}:{scope}", f"only_{rank}": rank, "nested": {"who": f"{store}:{scope}",
                                                                              f"n{rank}": True}}
        if store == "s3":
            s3_put(aws, f"{scope}/app.json", json.dumps(value))
        else:
            dynamo_put(aws, scope, "app.json", {"S": json.dumps(value)})
        # and a plain file that each place replaces whole
        if store == "s3":
            s3_put(aws, f"{scope}/motd.txt", f"motd from {store}:{scope}\n")
        else:
            dynamo_put(aws, scope, "motd.txt", {"S": f"motd from {store}:{scope}\n"})
    # a layer that is not ours must not leak in
    s3_put(aws, "Layers/worker/app.json", json.dumps({"who": "the worker layer"}))

    config = merged(aws)

    app = json.loads(config.files["app.json"].data)
    assert app["who"] == "dynamodb:Layers/api" and app["nested"]["who"] == "dynamodb:Layers/api"
    assert {k for k in app if k.startswith("only_")} == {f"only_{i}" for i in range(6)}  # deep merge keeps all
    assert app["nested"]["n0"] is True and app["nested"]["n5"] is True
    assert config.files["motd.txt"].data == b"motd from dynamodb:Layers/api\n"  # whole file replaced
    origins = {(f, k): s for f, k, s in config.origins()}
    assert origins[("app.json", "who")] == "dynamodb://skynet-cfgtest-config/Layers/api/app.json"
    assert origins[("app.json", "only_0")] == f"s3://{BUCKET}/Global/app.json"
    assert origins[("app.json", "only_2")] == f"s3://{BUCKET}/Environments/{ENV}/app.json"
    assert origins[("motd.txt", "")] == "dynamodb://skynet-cfgtest-config/Layers/api/motd.txt"

    # Without the layer's two places, the environment's DynamoDB item wins.
    aws.s3.delete_object(Bucket=BUCKET, Key="Layers/api/app.json")
    aws.dynamodb.delete_item(TableName=TABLE, Key={"scope": {"S": "Layers/api"}, "path": {"S": "app.json"}})
    assert json.loads(merged(aws).files["app.json"].data)["who"] == f"dynamodb:Environments/{ENV}"


def test_a_higher_value_that_is_not_an_object_replaces_the_lower_object_whole(aws):
    s3_put(aws, "Global/app.json", json.dumps({"db": {"host": "a", "port": 1}, "list": [1, 2]}))
    dynamo_put(aws, f"Environments/{ENV}", "app.json", {"M": {"db": {"S": "sqlite"}, "list": {"L": [{"N": "3"}]}}})
    app = json.loads(merged(aws).files["app.json"].data)
    assert app == {"db": "sqlite", "list": [3]}


def test_sync_writes_a_complete_tree_with_safe_modes_and_switches_atomically(aws, tmp_path):
    s3_put(aws, "Global/app.json", '{"greeting": "hello"}')
    s3_put(aws, "Global/deploy/github.pem", "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n")
    s3_put(aws, f"Environments/{ENV}/tls/site.crt", "CERT")
    s3_put(aws, f"Environments/{ENV}/tls/site.key", "KEY")
    s3_put(aws, "Layers/api/secrets/db-password", "hunter2")
    config = ConfigDir(tmp_path / "etc" / "config")

    first = sync(aws, config)

    assert config.path.is_symlink() and config.current_version() == first
    modes = {p.relative_to(config.path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in config.path.rglob("*") if p.is_file() and p.name != ".skynet-config"}
    # The app's group reads its settings, certificate and secrets; deploy and TLS keys are the worker's alone.
    assert modes == {"app.json": 0o640, "ssh/github.pem": 0o600, "tls/site.crt": 0o640, "tls/site.key": 0o600,
                     "secrets/db-password": 0o640}
    assert stat.S_IMODE((config.path / "ssh").stat().st_mode) == 0o700

    # A second version replaces the first in one step; the first is kept to return to.
    s3_put(aws, "Global/app.json", '{"greeting": "bonjour"}')
    second = sync(aws, config)
    assert second != first and json.loads((config.path / "app.json").read_text()) == {"greeting": "bonjour"}
    config.activate(first)
    assert json.loads((config.path / "app.json").read_text()) == {"greeting": "hello"}


@pytest.mark.parametrize("key", [
    "Global/../escape.txt", "Global/a/../../escape.txt", "Global//double-slash", "Global/.hidden",
    "Global/name with space", "Global/semi;colon", "Global/$(touch x)", "Global/-dash-first",
])
def test_an_object_key_aimed_at_the_file_system_is_refused_and_nothing_changes(aws, tmp_path, key):
    s3_put(aws, "Global/app.json", '{"greeting": "hello"}')
    config = ConfigDir(tmp_path / "config")
    before_version = sync(aws, config)
    before = tree_of(config)

    s3_put(aws, "Global/app.json", '{"greeting": "changed"}')
    s3_put(aws, key, "hostile")
    with pytest.raises(ConfigError) as refused:
        sync(aws, config)

    assert "config path" in str(refused.value) and BUCKET in str(refused.value)
    assert config.current_version() == before_version and tree_of(config) == before
    assert not (tmp_path / "escape.txt").exists() and not list(tmp_path.glob("x"))


@pytest.mark.parametrize("content, shown", [({"N": "42"}, "a number"), ({"SS": ["a", "b"]}, "a string set"),
                                            ({"BOOL": True}, "a boolean"), ({"NULL": True}, "null")])
def test_a_dynamodb_item_with_no_file_form_is_refused_and_nothing_changes(aws, tmp_path, content, shown):
    dynamo_put(aws, "Global", "app.json", {"S": '{"greeting": "hello"}'})
    config = ConfigDir(tmp_path / "config")
    before_version = sync(aws, config)

    dynamo_put(aws, "Layers/api", "limits.conf", content)
    with pytest.raises(ConfigError) as refused:
        sync(aws, config)

    assert shown in str(refused.value) and "Layers/api/limits.conf" in str(refused.value)
    assert config.current_version() == before_version


def test_invalid_json_and_colliding_keys_are_refused_before_anything_is_written(aws, tmp_path):
    config = ConfigDir(tmp_path / "config")
    s3_put(aws, "Global/app.json", "{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        sync(aws, config)
    aws.s3.delete_object(Bucket=BUCKET, Key="Global/app.json")
    s3_put(aws, "Global/a/id.pem", "k1")
    s3_put(aws, "Global/b/id.pem", "k2")
    with pytest.raises(ConfigError, match="both be written to 'ssh/id.pem'"):
        sync(aws, config)
    assert not config.path.exists()

@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/./b", "", "a/" * 9 + "b", "x" * 200, "ok\x00", "new\nline"])
def test_bad_paths_are_named_in_the_error(path):
    with pytest.raises(ConfigError):
        check_config_path(path, "somewhere")


def test_git_uses_exactly_the_deploy_keys_of_the_current_config(aws, tmp_path):
    config = ConfigDir(tmp_path / "config")
    assert git_ssh_environment(config) == {}
    s3_put(aws, "Global/github.pem", "KEY")
    sync(aws, config)

    command = shlex.split(git_ssh_environment(config)["GIT_SSH_COMMAND"])

    assert command[:3] == ["ssh", "-F", "/dev/null"]
    assert "IdentitiesOnly=yes" in command and "BatchMode=yes" in command
    assert command[command.index("-i") + 1] == str(config.path / "ssh" / "github.pem")


def test_a_push_uploads_the_tree_and_diff_shows_changes_without_secrets(aws, tmp_path):
    tree = tmp_path / "tree"
    (tree / "secrets").mkdir(parents=True)
    (tree / "app.json").write_text('{"greeting": "hello"}\n')
    (tree / "secrets" / "token").write_text("s3cr3t-one")
    os.chmod(tree / "secrets" / "token", 0o600)
    level = Level("layer", "Layers/api")

    first = push(aws.s3, aws.dynamodb, resolve(aws, ENV), level, read_tree(tree), "s3")
    assert first.added == ["app.json", "secrets/token"]

    (tree / "app.json").write_text('{"greeting": "bonjour"}\n')
    (tree / "secrets" / "token").write_text("s3cr3t-two")
    (tree / "extra.txt").write_text("x")
    stored = {o["Key"]: aws.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
              for o in aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    change = compare({k.removeprefix("Layers/api/"): v for k, v in stored.items()}, read_tree(tree))
    text = "\n".join(change.lines())
    assert change.added == ["extra.txt"] and change.changed == ["app.json", "secrets/token"]
    assert '-{"greeting": "hello"}' in text and '+{"greeting": "bonjour"}' in text
    assert "s3cr3t" not in text and "secrets/token is a secret" in text

    (tree / "extra.txt").unlink()
    (tree / "app.json").unlink()
    second = push(aws.s3, aws.dynamodb, resolve(aws, ENV), level, read_tree(tree), "dynamodb")
    assert second.added == ["secrets/token"]  # the table level was empty: the bucket is another store
    assert json.loads(merged(aws).files["app.json"].data) == {"greeting": "hello"}  # still from S3


@pytest.mark.parametrize("make, error", [
    (lambda t: (t / "id.pem").write_text("k") or os.chmod(t / "id.pem", 0o644), "is a secret but its mode is 0644"),
    (lambda t: os.symlink("/etc/passwd", t / "passwd"), "is a symlink"),
    (lambda t: (t / "bad.json").write_text("{"), "not valid JSON"),
    (lambda t: (t / "bad name.txt").write_text("x"), "is not made of letters"),
])
def test_a_bad_tree_is_refused_before_anything_is_uploaded(aws, tmp_path, make, error):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.json").write_text("{}")
    make(tree)
    with pytest.raises(ConfigError, match=error):
        push(aws.s3, aws.dynamodb, resolve(aws, ENV), Level("layer", "Layers/api"), read_tree(tree), "s3")
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=BUCKET)
