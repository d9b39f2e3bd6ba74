"""Build and update logs are stored with the env's secrets taken out.

The build goes through the real task path (``handle_build``: clone, steps, upload, log) on
moto's server, with a build step that prints a secret file of the instance's config.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from clusterkit import sender_for
from ledgerkit import bootstrapped_moto

from skynet_tasks.aws import Aws
from skynet_tasks.buildrequest import new_rollout_id
from skynet_tasks.conductor import Decision, Group, Rollout, Ticket
from skynet_tasks.context import Context
from skynet_tasks.installer import UpdateFailed
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.sample_repo import commit_files, create_sample_repo
from skynet_tasks.redaction import MIN_LENGTH, REDACTED, Redactor, config_secrets, secret_values
from skynet_tasks.settings import Settings
from skynet_tasks.states import RolloutKind, RolloutState, TicketState
from skynet_tasks.tasks import update as update_task
from skynet_tasks.tasks.build import handle_build

pytestmark = pytest.mark.timeout(120)

GROUP = "local-api"
DB_PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - the secret the test tries to leak
API_KEY = "ak_live_5f2c9e71b0d4"
WEBHOOK_SECRET = "webhook-secret-0123456789"  # noqa: S105
SHORT_PIN = "4711abc"  # 7 characters: below MIN_LENGTH, left alone
PLAIN_VALUE = "log-format-is-verbose"
PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
       "-----END OPENSSH PRIVATE KEY-----\n")


def config_dir(root: Path) -> Path:
    """An instance's config directory as the sync lays it out: secret files, a deploy key, a plain file."""
    config = root / "config"
    (config / "secrets").mkdir(parents=True)
    (config / "ssh").mkdir()
    (config / "secrets" / "db.env").write_text(f"DB_PASSWORD={DB_PASSWORD}\nexport API_KEY='{API_KEY}'\n")
    (config / "pin.secret").write_text(SHORT_PIN + "\n")
    (config / "ssh" / "deploy.pem").write_text(PEM)
    (config / "app.json").write_text(f'{{"log": "{PLAIN_VALUE}"}}\n')
    return config


# ---- what is redacted -------------------------------------------------------------------------
def test_a_secret_files_values_lines_and_whole_text_are_secrets():
    values = secret_values(f"DB_PASSWORD={DB_PASSWORD}\nexport API_KEY='{API_KEY}'\n")

    assert {DB_PASSWORD, API_KEY, f"DB_PASSWORD={DB_PASSWORD}"} <= values
    pem = secret_values(PEM)
    assert PEM.strip() in pem and "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" in pem
    assert "-----BEGIN OPENSSH PRIVATE KEY-----" not in pem  # the armour names the kind of key, nothing more


def test_only_the_config_directorys_secret_files_count(tmp_path):
    values = config_secrets(config_dir(tmp_path))

    assert {DB_PASSWORD, API_KEY, SHORT_PIN, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"} <= values
    assert not any(PLAIN_VALUE in value for value in values)
    assert config_secrets(tmp_path / "missing") == set()


def test_short_values_are_not_redacted_and_longer_ones_win_over_their_parts():
    redactor = Redactor.of([SHORT_PIN, "secret-one", "secret-one-and-more"])

    text = redactor.redact(f"pin {SHORT_PIN}; key secret-one-and-more; other secret-one.")

    assert len(SHORT_PIN) < MIN_LENGTH
    assert text == f"pin {SHORT_PIN}; key {REDACTED}; other {REDACTED}."


# ---- the task paths -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[MotoServer, Aws]]:
    with bootstrapped_moto([GROUP]) as started:
        yield started


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The group's repository, registered once: a group builds only the repository it was registered with."""
    return create_sample_repo(tmp_path_factory.mktemp("repo"))


@pytest.fixture
def ctx(moto, tmp_path) -> Context:
    server, aws = moto
    environment = {**server.environment(), "SKYNET_ENV": "local"}
    settings = Settings.from_env({"SKYNET_ENV": "local", "SKYNET_INSTANCE_ID": "api-1", "SKYNET_ROOT":
                                  str(tmp_path / "root"), "SKYNET_CONFIG_DIR": str(config_dir(tmp_path)),
                                  "SKYNET_WEBHOOK_SECRET": WEBHOOK_SECRET})
    return Context.create(settings, sender_for(environment).app, aws)


def build(ctx: Context, bare: Path, tmp_path: Path, steps: list[list[str]]) -> str:
    """Build a commit whose skynet.yml runs ``steps`` through ``handle_build``; return its stored build log."""
    sha = commit_files(bare, tmp_path / "work", {"skynet.yml": yaml.safe_dump({"build": steps})}, "Leaky build")
    ctx.ledger.ensure_group(GROUP, str(bare), "main")
    rollout_id = new_rollout_id()

    handle_build(ctx, {"group": GROUP, "repo": str(bare), "branch": "main", "sha": sha, "rollout_id": rollout_id,
                       "source": "test", "requested_at": time.time()})

    rollout = ctx.ledger.rollout_item(rollout_id) or {}
    assert rollout.get("build_log_key"), rollout
    return ctx.store.get_text(rollout["build_log_key"])


def leaky_steps(config: Path) -> list[list[str]]:
    printer = "import pathlib, sys; print(pathlib.Path(sys.argv[1]).read_text())"
    return [["python3", "-c", printer, str(config / "secrets" / "db.env")],
            ["python3", "-c", printer, str(config / "pin.secret")],
            ["python3", "-c", printer, str(config / "app.json")],
            ["python3", "-c", f"print('signing with {WEBHOOK_SECRET}')"]]


@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
def test_a_build_step_that_prints_a_secret_leaves_a_redacted_log(ctx, repo, tmp_path, outcome):
    steps = leaky_steps(ctx.settings.config_dir)
    if outcome == "fails":
        steps.append(["python3", "-c", "import sys; sys.exit(3)"])

    stored = build(ctx, repo, tmp_path, steps)

    assert stored.count(REDACTED) >= 2  # the secret file printed, the webhook secret printed (and its command)
    for secret in (DB_PASSWORD, API_KEY, WEBHOOK_SECRET):
        assert secret not in stored
    assert f"signing with {REDACTED}" in stored
    assert SHORT_PIN in stored and PLAIN_VALUE in stored  # what is not a (long enough) secret stays readable
    assert ("build failed" in stored) == (outcome == "fails")


def test_a_hook_that_prints_a_secret_leaves_a_redacted_update_log(ctx, monkeypatch):
    # Given ticket 1 of a rollout updating on this instance, whose update fails printing a secret
    rollout_id, now = new_rollout_id(), time.time()
    rollout = Rollout(rollout_id, GROUP, "c" * 40, state=RolloutState.RUNNING, created_at=now, canary="api-1",
                      tickets=(Ticket(1, "api-1", TicketState.UPDATING, now, now, deadline=now + 300),))
    ctx.ledger.write_decision(Group(GROUP), Decision(Group(GROUP, line=(rollout,)), touched=(rollout,)))

    def hook_prints_secret(*_: object) -> str:
        raise UpdateFailed("validate hook failed", f"[validate] connecting with password {DB_PASSWORD}\n")

    monkeypatch.setitem(update_task.UPDATERS, RolloutKind.CODE, hook_prints_secret)

    # When the instance runs its ticket
    update_task.handle_update(ctx, rollout_id, 1)

    # Then the stored update log says what failed, without the secret
    ticket = ctx.ledger.ticket(rollout_id, 1) or {}
    stored = ctx.store.get_text(ticket["log_key"])
    assert stored == f"[validate] connecting with password {REDACTED}\n"
