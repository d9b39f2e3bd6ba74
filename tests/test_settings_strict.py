"""Settings are finished once: every SKYNET_* variable is declared, and a typo or a bad value stops a process at start.

Given an environment with a mistyped or a badly valued variable, when any entry point
starts (a skynet command, the worker, the Lambda handler, the boot, a stack runner),
then it stops at once, naming the variable, before it asks AWS or instance metadata
anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.client
import pytest
from click.testing import CliRunner

from skynet_tasks.app import create_app
from skynet_tasks.cli import main
from skynet_tasks.settings import Settings, SettingsError
from skynet_tasks.variables import BY_NAME, VARIABLES

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
TYPO = {"SKYNET_HEARTBEAT_INTERVL": "5"}
BAD = [({"SKYNET_POLL_WAIT": "abc"}, "SKYNET_POLL_WAIT='abc' is not an integer"),
       ({"SKYNET_POLL_WAIT": "99"}, "SKYNET_POLL_WAIT='99' is out of range [0–20]"),
       (TYPO, "SKYNET_HEARTBEAT_INTERVL is not a Skynet variable (did you mean SKYNET_HEARTBEAT_INTERVAL?)")]
COMMANDS = [["worker"], ["status"], ["webhook", "serve"], ["monitor", "serve"], ["deploy", "--ref", "main"]]


def clean_environment(**variables: str) -> dict[str, str]:
    """This shell's environment without its SKYNET_* variables, plus ``variables``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SKYNET_")}, **variables}


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS API call this process tries (none is made: each fails the call)."""
    calls: list[str] = []

    def refuse(client: Any, operation: str, params: Any) -> Any:
        calls.append(operation)
        raise AssertionError(f"AWS was asked {operation}")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    return calls


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set this process's environment to exactly the given SKYNET_* variables."""
    def set_to(variables: dict[str, str]) -> None:
        for key in [k for k in os.environ if k.startswith("SKYNET_")]:
            monkeypatch.delenv(key)
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
    return set_to


@pytest.mark.parametrize(("variables", "message"), BAD)
def test_a_typo_or_a_bad_value_is_refused_naming_it(variables, message):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(variables)

    assert message in str(refused.value)


@pytest.mark.parametrize("address", ["fe80::1%eth0", "fe80::1%eth0;}", "fe80::1%x\nlisten 80"])
def test_an_address_with_an_ipv6_zone_is_refused_as_nginx_would_refuse_it(address):
    # The instance's address goes into every proxy's nginx upstream, and its own listen line
    with pytest.raises(SettingsError, match="SKYNET_ADDRESS=.*zone"):
        Settings.from_env({"SKYNET_ADDRESS": address})
    assert Settings.from_env({"SKYNET_ADDRESS": "fe80::1"}).address == "fe80::1"


def test_a_variable_far_from_every_name_is_refused_without_a_guess():
    with pytest.raises(SettingsError, match=r"SKYNET_XYZZY_PLUGH is not a Skynet variable: see"):
        Settings.from_env({"SKYNET_XYZZY_PLUGH": "1"})


def test_a_refused_secret_is_not_shown():
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"SKYNET_WEBHOOK_SECRET": "hunter2", "SKYNET_WEBHOOK_SECRT": "hunter2"})

    assert "SKYNET_WEBHOOK_SECRT" in str(refused.value) and "hunter2" not in str(refused.value)
    assert "hunter2" not in repr(Settings.from_env({"SKYNET_WEBHOOK_SECRET": "hunter2"}))


def test_the_declared_defaults_are_the_settings_defaults():
    assert Settings.from_env({}) == Settings()


def test_what_skynet_gives_the_app_does_not_stop_a_worker_that_inherits_it():
    app_environment = {"SKYNET_RELEASE": "a" * 40, "SKYNET_ROLLOUT": "boot", "SKYNET_TICKET": "0",
                       "SKYNET_SHA": "a" * 40, "SKYNET_WHEEL_PARAMETER": "/skynet/prod/agent-wheel",
                       "SKYNET_AGENT_PATH": "/srv/skynet/agent/1", "SKYNET_LIFECYCLE_HOOK": "launching"}

    settings = Settings.from_env({**app_environment, "SKYNET_INSTANCE_ID": "api-1"})

    assert settings.lifecycle_hook == "launching" and settings.instance_id == "api-1"


def test_every_skynet_name_in_the_code_and_the_template_is_declared():
    sources = [*ROOT.glob("skynet_tasks/**/*.py"), *ROOT.glob("skynet_tasks/**/*.j2"), *ROOT.glob("workers/*"),
               *ROOT.glob("benchmarks/*.py"), ROOT / "cloudformation" / "php-nginx.yaml", ROOT / "celeryconfig.py"]
    found = {name for path in sources if path.is_file()
             for name in re.findall(r"SKYNET_[A-Z0-9_]*[A-Z0-9]", path.read_text())}

    assert found - set(BY_NAME) == set()
    assert len(BY_NAME) == len(VARIABLES)


def test_the_documentation_holds_every_declared_variable():
    printed = CliRunner().invoke(main, ["config", "variables"], env=clean_environment())

    assert printed.exit_code == 0, printed.output
    assert printed.output in (ROOT / "docs" / "configuration.md").read_text()
    assert all(f"| `{v.name}` |" in printed.output for v in VARIABLES)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(("variables", "message"), BAD)
def test_every_command_stops_at_start_naming_the_variable(command, variables, message, aws_calls, monkeypatch):
    import workers.launch

    monkeypatch.setattr(workers.launch, "resolve_identity", lambda: pytest.fail("instance metadata was asked"))

    result = CliRunner().invoke(main, command, env=clean_environment(**variables))

    assert result.exit_code == 4
    assert message in result.output
    assert aws_calls == []


def test_skynet_worker_with_a_typo_exits_at_once_without_reaching_aws():
    # An endpoint nothing listens on, one attempt: had it tried AWS or metadata, the error would say so.
    unreachable = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9",
                   "AWS_MAX_ATTEMPTS": "1", "AWS_DEFAULT_REGION": "us-east-1"}

    result = subprocess.run([sys.executable, "-m", "skynet_tasks.cli", "worker"], capture_output=True, text=True,
                            env=clean_environment(**unreachable, **TYPO), timeout=30, check=False)

    assert result.returncode == 4
    assert result.stderr.strip() == ("Error: SKYNET_HEARTBEAT_INTERVL is not a Skynet variable (did you mean "
                                     "SKYNET_HEARTBEAT_INTERVAL?): see docs/configuration.md, \"Every variable\"")


def test_the_worker_refuses_before_asking_instance_metadata(environment, aws_calls, monkeypatch):
    import workers.launch

    asked: list[str] = []
    monkeypatch.setattr(workers.launch, "resolve_identity", lambda: asked.append("metadata"))
    environment({**TYPO, "SKYNET_INSTANCE_ID": "api-1"})

    with pytest.raises(SettingsError, match="SKYNET_HEARTBEAT_INTERVL"):
        workers.launch.run_worker(role="work")

    assert asked == [] and aws_calls == []


NO_ROUTES = ({"SKYNET_WEBHOOK_SECRET": "s"}, "SKYNET_WEBHOOK_ROUTES is not set")


@pytest.mark.parametrize(("variables", "message"), [*BAD, NO_ROUTES])
def test_the_lambda_handler_answers_500_and_logs_why(variables, message, environment, aws_calls, monkeypatch,
                                                     caplog):
    from skynet_tasks.webhook import lambda_handler

    monkeypatch.setattr(lambda_handler, "_receiver", None)
    routes = {"SKYNET_WEBHOOK_ROUTES": json.dumps({"routes": []})} if "ROUTES" not in message else {}
    environment({"SKYNET_WEBHOOK_SECRET": "s", **routes, **variables})

    with caplog.at_level(logging.ERROR, logger=lambda_handler.__name__):
        answer = lambda_handler.handler({"headers": {}, "body": "{}"}, None)

    assert answer["statusCode"] == 500
    assert "misconfigured" in json.loads(answer["body"])["error"]
    assert message in caplog.text
    assert aws_calls == []


def test_the_boot_stops_before_asking_instance_metadata(environment, monkeypatch, tmp_path):
    import workers.boot

    monkeypatch.setattr(workers.boot, "fill_from_ec2", lambda environ: pytest.fail("instance metadata was asked"))
    monkeypatch.setattr(workers.boot, "ENV_FILE", tmp_path / "env")
    environment({**TYPO, "SKYNET_ENV": "prod", "SKYNET_LAYER": "api", "SKYNET_REPO": "r",
                 "SKYNET_CONFIG_BUCKET": "c", "SKYNET_REPO_BUCKET": "b"})

    with pytest.raises(SystemExit, match="skynet boot: SKYNET_HEARTBEAT_INTERVL is not a Skynet variable"):
        workers.boot.main()

    assert not (tmp_path / "env").exists()


def test_a_stack_runner_stops_on_a_bad_value(environment, monkeypatch):
    from skynet_tasks.stacks import run

    monkeypatch.setattr(sys, "argv", ["run", "php-nginx"])
    monkeypatch.setattr(run, "run", lambda *_: pytest.fail("the stack started"))
    environment({"SKYNET_APP_PORT": "http"})

    with pytest.raises(SystemExit, match="SKYNET_APP_PORT='http' is not an integer"):
        run.main()


def test_the_celery_app_takes_its_configuration_from_the_settings():
    settings = Settings.from_env({"SKYNET_POLL_WAIT": "5", "SKYNET_POLL_INTERVAL": "0.5",
                                  "SKYNET_BROKER_URL": "sqs://@127.0.0.1:1"})

    conf = create_app(settings).conf

    assert conf.broker_url == "sqs://@127.0.0.1:1"
    assert (conf.broker_transport_options["wait_time_seconds"], conf.broker_transport_options["polling_interval"]) \
        == (5, 0.5)
    assert conf.task_acks_late and conf.worker_prefetch_multiplier == 1


def test_the_tasks_app_used_before_its_process_built_settings_is_an_error_not_a_default():
    probe = "from skynet_tasks.app import app\nprint('imported', flush=True)\napp.conf.broker_url"

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=clean_environment(SKYNET_POLL_WAIT="abc"), timeout=30, check=False)

    assert result.stdout == "imported\n"  # importing does nothing with the environment
    assert result.returncode == 1
    assert "used before its process built its settings" in result.stderr
