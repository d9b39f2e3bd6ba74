"""Structured logs: ``SKYNET_LOG_FORMAT=json`` makes every process write JSON lines with the ids that place them."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from skynet_tasks import logformat
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.buildrequest import new_rollout_id
from skynet_tasks.cli import main
from skynet_tasks.local.motoserver import MotoServer, free_port
from skynet_tasks.messages import MAINTENANCE_TASK, UPDATE_TASK
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(120)

GROUP = "local-api"


# ---- the format ---------------------------------------------------------------------------------
def formatted(log_format: str, fields: dict[str, object], message: str = "rollout %s: ticket %d done",
              args: tuple[object, ...] = ("r-1", 3), exc: bool = False) -> str:
    """What one record looks like through the handler ``configure`` installs."""
    handler = logformat._SkynetHandler(log_format)
    handler.stream = io.StringIO()
    handler.context.process.update({"instance": "api-1", "group": GROUP, "role": "work"})
    record = logging.LogRecord("skynet_tasks.tasks.update", logging.INFO, __file__, 1, message, args,
                               sys.exc_info() if exc else None)
    with logformat.task_fields(fields):
        handler.handle(record)
    return handler.stream.getvalue()


def test_a_json_line_carries_the_process_and_task_fields():
    line = formatted("json", {"task": "skynet.update", "rollout_id": "r-1", "ticket": 3})

    parsed = json.loads(line)
    assert parsed["message"] == "rollout r-1: ticket 3 done"
    assert (parsed["level"], parsed["logger"]) == ("INFO", "skynet_tasks.tasks.update")
    assert {k: parsed[k] for k in logformat.FIELDS} == {"rollout_id": "r-1", "ticket": 3, "instance": "api-1",
                                                        "group": GROUP, "role": "work", "task": "skynet.update"}
    assert line.count("\n") == 1 and "time" in parsed


def test_unknown_fields_are_left_out_and_text_shows_the_known_ones_after_the_message():
    parsed = json.loads(formatted("json", {}))
    text = formatted("text", {"rollout_id": "r-1"})

    assert "rollout_id" not in parsed and "ticket" not in parsed and "task" not in parsed
    assert text.rstrip("\n").endswith("rollout r-1: ticket 3 done [rollout_id=r-1 instance=api-1 group=local-api "
                                      "role=work]")


def test_a_hostile_field_or_message_cannot_forge_a_line():
    text = formatted("text", {"rollout_id": "r-1\n2026-01-01 ERROR forged: line"})
    line = formatted("json", {"rollout_id": "x"}, message="evil\n{\"level\": \"ERROR\"}", args=())

    assert text.count("\n") == 1 and "'r-1\\n2026" in text
    assert line.count("\n") == 1 and json.loads(line)["message"] == "evil\n{\"level\": \"ERROR\"}"


def test_a_traceback_stays_inside_its_json_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        line = formatted("json", {}, exc=True)

    assert line.count("\n") == 1 and "RuntimeError: boom" in json.loads(line)["exc_info"]


def test_the_fields_of_a_task_come_from_its_arguments_and_message_bodies():
    update = logformat.fields_of_task("skynet.update", {"rollout_id": "r-1", "ticket": 2})
    build = logformat.fields_of_task("skynet.build", {"request": {"rollout_id": "r-2", "group": GROUP,
                                                                  "sha": "a" * 40}})
    event = logformat.fields_of_task("skynet.maintenance", {"group": GROUP, "event": {
        "type": "update_reported", "rollout_id": "r-3", "ticket": 4, "instance": "api-9", "ok": True}})
    ready = logformat.fields_of_task("skynet.maintenance", {"group": GROUP, "event": {
        "type": "rollout_ready", "rollout": {"id": "r-4", "group": GROUP}}})

    assert update == {"task": "skynet.update", "rollout_id": "r-1", "ticket": 2}
    assert build == {"task": "skynet.build", "rollout_id": "r-2", "group": GROUP}
    assert event == {"task": "skynet.maintenance", "rollout_id": "r-3", "ticket": 4, "group": GROUP}
    assert ready == {"task": "skynet.maintenance", "rollout_id": "r-4", "group": GROUP}


def test_a_bad_log_format_is_refused_naming_the_choices():
    result = CliRunner().invoke(main, ["--log-format", "xml", "status"])
    by_variable = CliRunner().invoke(main, ["status"], env={"SKYNET_LOG_FORMAT": "yaml"})

    assert result.exit_code == 4 and "'xml' is not one of 'text', 'json'" in result.output
    assert by_variable.exit_code == 4 and "'yaml' is not one of 'text', 'json'" in by_variable.output


def test_the_worker_spells_its_log_level_like_every_command():
    help_text = CliRunner().invoke(main, ["worker", "--help"]).output

    assert "--log-level" in help_text and "--loglevel" not in help_text  # the old spelling is hidden
    assert "SKYNET_LOG_LEVEL" in help_text


# ---- a real worker --------------------------------------------------------------------------------
@pytest.fixture
def json_worker(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """``skynet worker`` (with its conductor) on moto's server with SKYNET_LOG_FORMAT=json; its log file."""
    moto = MotoServer.start()
    process = None
    try:
        aws = aws_for(moto.environment())
        bootstrap_env(aws, resolve(aws, "local"), [GROUP])
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SKYNET_")}, **moto.environment(),
            "SKYNET_ENV": "local", "SKYNET_INSTANCE_ID": "api-1", "SKYNET_ROOT": str(tmp_path / "root"),
            "SKYNET_CONFIG_DIR": str(tmp_path / "config"), "SKYNET_APP_PORT": str(free_port()),
            "SKYNET_REPO": str(tmp_path / "no-repo.git"), "SKYNET_LOG_FORMAT": "json",
        }
        log_file = tmp_path / "worker.log"
        with open(log_file, "ab") as out:
            process = subprocess.Popen([sys.executable, "-m", "skynet_tasks.cli", "worker"], env=environment,
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=tmp_path)
        yield environment, log_file
    finally:
        if process is not None:
            os.killpg(process.pid, 15)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        moto.stop()


def json_lines(log_file: Path) -> list[dict]:
    return [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]


def test_a_worker_with_json_logs_writes_the_rollout_and_instance_of_an_update(json_worker):
    from clusterkit import sender_for

    environment, log_file = json_worker
    rollout_id = new_rollout_id()
    deadline = time.monotonic() + 60
    while not any("starting its all worker" in line.get("message", "") for line in json_lines(log_file)):
        assert time.monotonic() < deadline, log_file.read_text()[-3000:]
        time.sleep(0.2)

    # When the instance is sent an update (of a ticket that is not its to run: it says so and stops)
    sender_for(environment).to_instance("api-1", UPDATE_TASK, {"rollout_id": rollout_id, "ticket": 1})

    def about_the_update() -> list[dict]:
        return [line for line in json_lines(log_file) if line.get("rollout_id") == rollout_id]

    while not about_the_update():
        assert time.monotonic() < deadline, log_file.read_text()[-3000:]
        time.sleep(0.2)
    # Then every line of the worker and its pool child is a JSON object, and the update's carry its ids
    lines = json_lines(log_file)
    assert all(isinstance(line, dict) and {"time", "level", "logger", "message"} <= set(line) for line in lines)
    update = about_the_update()[0]
    assert update["instance"] == "api-1" and update["group"] == GROUP and update["role"] == "work"
    assert update["task"] == UPDATE_TASK and update["ticket"] == 1
    assert "work" in {line.get("role") for line in lines} and "conductor" not in {line.get("role") for line in lines}

    # When a conductor step runs (here on an event it cannot read), its lines say so
    sender_for(environment).maintenance(GROUP, {"type": "no-such-event"}, dedup=rollout_id)
    while not (steps := [line for line in json_lines(log_file) if line.get("role") == "conductor"]):
        assert time.monotonic() < deadline, log_file.read_text()[-3000:]
        time.sleep(0.2)
    assert steps[0]["task"] == MAINTENANCE_TASK and steps[0]["group"] == GROUP and steps[0]["instance"] == "api-1"
