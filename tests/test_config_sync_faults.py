"""A config sync against moto's server that meets a disk that misbehaves or values nested absurdly deep.

Given an instance on a good config, when the next sync meets a half-written generation, a short write,
a full disk or a value nested deeper than 32 levels, then it either writes every byte or refuses with a
clear error, and the instance stays on its last good config (at boot too: it keeps running).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from configkit import ENV, TABLE, config_sources, dynamo_put, empty_sources, s3_put, sync  # noqa: F401 - the fixtures aws and (autouse) empty_sources

from skynet_tasks.aws import Aws
from skynet_tasks.config.apply import sync_config
from skynet_tasks.config.nesting import MAX_NESTING
from skynet_tasks.config.paths import ConfigError
from skynet_tasks.config.sync import ConfigDir
from skynet_tasks.resources import resolve
from workers.launch import sync_config_at_boot

DEEP = 200_000


def on_good_config(aws: Aws, tmp_path) -> tuple[ConfigDir, str]:
    s3_put(aws, "Global/app.json", '{"greeting": "hello"}')
    config = ConfigDir(tmp_path / "config")
    return config, sync(aws, config)


def nested_map(depth: int) -> dict:
    """A DynamoDB map attribute ``depth`` maps deep: {"M": {"a": {"M": ...}}}."""
    value: dict = {"S": "bottom"}
    for _ in range(depth):
        value = {"M": {"a": value}}
    return value


# ---- the disk -----------------------------------------------------------------------

def test_a_half_written_generation_is_never_what_the_config_directory_points_at(aws, tmp_path, monkeypatch):
    s3_put(aws, "Global/app.json", '{"greeting": "hello"}')
    s3_put(aws, "Global/z-last.txt", "last")
    config = ConfigDir(tmp_path / "config")
    first = sync(aws, config)
    s3_put(aws, "Global/app.json", '{"greeting": "changed"}')

    import skynet_tasks.config.sync as sync_module
    real_write = sync_module._write_file

    def fail_on_last(path: Path, data: bytes, mode: int) -> None:
        if path.name == "z-last.txt":
            raise OSError(28, "No space left on device")
        real_write(path, data, mode)

    monkeypatch.setattr(sync_module, "_write_file", fail_on_last)
    with pytest.raises(ConfigError, match="No space left"):
        sync(aws, config)

    assert config.current_version() == first
    assert json.loads((config.path / "app.json").read_text()) == {"greeting": "hello"}
    assert [p.name for p in config.generations.iterdir() if p.name.startswith(".tmp")] == []


def test_short_writes_still_write_every_byte(aws, tmp_path, monkeypatch):
    big = "x" * 100_000
    s3_put(aws, "Global/big.txt", big)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:4096])))  # as a busy disk may

    config = ConfigDir(tmp_path / "config")
    sync(aws, config)

    assert (config.path / "big.txt").read_text() == big


def test_a_disk_that_fills_up_mid_file_refuses_the_generation_and_the_previous_stays(aws, tmp_path, monkeypatch):
    config, first = on_good_config(aws, tmp_path)
    s3_put(aws, "Global/app.json", json.dumps({"greeting": "changed", "padding": "y" * 50_000}))
    real_write = os.write
    room = [30_000]  # bytes left on the disk: half of app.json, and then some (a small file still fits)

    def fills_up(fd: int, data) -> int:
        if not room[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = real_write(fd, bytes(data[:room[0]]))  # write(2) writes what fits and says how much
        room[0] -= written
        return written

    monkeypatch.setattr(os, "write", fills_up)
    with pytest.raises(ConfigError, match="No space left on device"):
        sync(aws, config)
    monkeypatch.undo()

    assert config.current_version() == first
    assert json.loads((config.path / "app.json").read_text()) == {"greeting": "hello"}
    assert [p.name for p in config.generations.iterdir() if p.name.startswith(".tmp")] == []


# ---- nesting --------------------------------------------------------------------------

def test_a_json_file_nested_200000_deep_is_refused_naming_the_file(aws, tmp_path):
    config, first = on_good_config(aws, tmp_path)
    s3_put(aws, "Layers/api/deep.json", "[" * DEEP + "]" * DEEP)

    with pytest.raises(ConfigError, match=f"Layers/api/deep.json: nested deeper than {MAX_NESTING} levels"):
        sync(aws, config)
    assert config.current_version() == first


def test_a_dynamodb_string_item_nested_150000_deep_is_refused_naming_the_item(aws, tmp_path):
    config, first = on_good_config(aws, tmp_path)
    deep = 150_000  # the most an item holds (400 KB)
    dynamo_put(aws, "Layers/api", "app.json", {"S": "[" * deep + "]" * deep})

    with pytest.raises(ConfigError, match="Layers/api/app.json: nested deeper"):
        sync(aws, config)
    assert config.current_version() == first


def test_a_value_one_level_too_deep_is_refused_naming_its_key_and_the_deepest_allowed_is_kept(aws, tmp_path):
    config, _ = on_good_config(aws, tmp_path)
    dynamo_put(aws, "Layers/api", "limits.json", nested_map(MAX_NESTING))
    sync(aws, config)  # 32 levels: as deep as DynamoDB itself allows
    assert (config.path / "limits.json").exists()

    dynamo_put(aws, "Layers/api", "limits.json", nested_map(MAX_NESTING + 1))
    with pytest.raises(ConfigError, match=r"Layers/api/limits.json: key a\.a\.a\.a\.… nests deeper than 32"):
        sync(aws, config)
    aws.dynamodb.delete_item(TableName=TABLE, Key={"scope": {"S": "Layers/api"}, "path": {"S": "limits.json"}})
    inside_json = '{"db": ' * (MAX_NESTING + 1) + "1" + "}" * (MAX_NESTING + 1)
    s3_put(aws, "Global/app.json", inside_json)
    with pytest.raises(ConfigError, match=r"Global/app.json: nested deeper than 32"):
        sync(aws, config)


def test_a_sync_at_boot_that_meets_a_deep_item_keeps_the_last_good_config_and_the_instance_running(aws, tmp_path):

    config, first = on_good_config(aws, tmp_path)
    s3_put(aws, "Global/app.json", "[" * DEEP + "]" * DEEP)
    ctx = SimpleNamespace(aws=aws, resources=resolve(aws, ENV),
                          settings=SimpleNamespace(config_dir=config.path, layer="api"))

    with pytest.raises(ConfigError):
        sync_config(ctx)  # type: ignore[arg-type]
    sync_config_at_boot(ctx)  # type: ignore[arg-type] - logs the refusal, raises nothing

    assert config.current_version() == first
    assert json.loads((config.path / "app.json").read_text()) == {"greeting": "hello"}


def test_any_other_failure_of_the_sync_at_boot_keeps_the_last_good_config_and_the_instance_running(
        aws, tmp_path, monkeypatch, caplog):
    config, first = on_good_config(aws, tmp_path)
    ctx = SimpleNamespace(aws=aws, resources=resolve(aws, ENV),
                          settings=SimpleNamespace(config_dir=config.path, layer="api"))

    def broken(_: object) -> None:
        raise RuntimeError("a bug nobody foresaw")

    monkeypatch.setattr("workers.launch.sync_config", broken)
    sync_config_at_boot(ctx)  # type: ignore[arg-type] - a worker that raised here would restart into it forever

    assert config.current_version() == first
    assert "a bug nobody foresaw" in caplog.text
