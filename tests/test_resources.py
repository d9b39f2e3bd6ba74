"""One resolver for an env's resource names: the stack's names, explicit settings first, against moto's server.

The CloudFormation stack names the buckets ``skynet-<env>-config-<account>`` and
``skynet-<env>-repo-<account>``; every caller (CLI, dashboard, workers, bootstrap)
must find them under those names, and ``SKYNET_CONFIG_BUCKET``/``SKYNET_REPO_BUCKET``
(an instance's user-data) win for their own env only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from monitorkit import HALTED, seed

from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.local.motoserver import LOCAL_CREDENTIALS, MotoServer, free_port
from skynet_tasks.resources import EnvResources, ResourceError, resolve
from skynet_tasks.settings import Settings

pytestmark = pytest.mark.timeout(120)

MOTO_ACCOUNT = "123456789012"  # the account id moto's server answers for


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer.start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto: MotoServer) -> Aws:
    return aws_for(moto.environment())


@pytest.fixture
def unreachable() -> Aws:
    """An Aws whose every call fails: resolving with it proves no AWS call was made."""
    return aws_for({**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})


def settings(env: str, **variables: str) -> Settings:
    return Settings.from_env({"SKYNET_ENV": env, **variables})


def skynet(moto: MotoServer, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SKYNET_", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "skynet_tasks.cli", *args], capture_output=True, text=True,
                          env={**environment, **moto.environment(), **variables}, check=False, timeout=60)


def test_without_explicit_names_the_buckets_are_the_stacks_with_the_account_id(aws):
    resources = resolve(aws, "staging", settings("staging"))

    assert resources == EnvResources(
        env="staging", config_bucket=f"skynet-staging-config-{MOTO_ACCOUNT}",
        repo_bucket=f"skynet-staging-repo-{MOTO_ACCOUNT}", endpoints_table="skynet-staging-endpoints",
        state_table="skynet-staging-state", config_table="skynet-staging-config")
    assert resources.maintenance_queue("staging-api") == "skynet-staging-staging-api-maint.fifo"
    assert resources.instance_queue("i-0abc") == "skynet-staging-inst-i-0abc"


def test_explicit_bucket_names_win_for_their_own_env_and_need_no_aws_call(unreachable):
    own = settings("prod", SKYNET_CONFIG_BUCKET="acme-prod-config", SKYNET_REPO_BUCKET="acme-prod-repo")

    resources = resolve(unreachable, "prod", own)

    assert (resources.config_bucket, resources.repo_bucket) == ("acme-prod-config", "acme-prod-repo")
    assert resources.state_table == "skynet-prod-state"


def test_explicit_bucket_names_never_apply_to_another_env(aws):
    prods = settings("prod", SKYNET_CONFIG_BUCKET="acme-prod-config", SKYNET_REPO_BUCKET="acme-prod-repo")

    resources = resolve(aws, "staging", prods)

    assert resources.config_bucket == f"skynet-staging-config-{MOTO_ACCOUNT}"
    assert resources.repo_bucket == f"skynet-staging-repo-{MOTO_ACCOUNT}"


def test_one_explicit_bucket_leaves_the_other_to_the_stacks_name(aws):
    resources = resolve(aws, "prod", settings("prod", SKYNET_REPO_BUCKET="acme-prod-repo"))

    assert (resources.config_bucket, resources.repo_bucket) == (f"skynet-prod-config-{MOTO_ACCOUNT}", "acme-prod-repo")


@pytest.mark.parametrize("env", ["Prod", "prod_eu", "-prod", "", "prod/../x"])
def test_an_invalid_env_is_refused_with_a_clear_error_before_any_aws_call(unreachable, env):
    with pytest.raises(ValueError, match=r"env .* is not valid: use 1-40 lowercase letters"):
        resolve(unreachable, env)


def test_an_env_too_long_for_an_s3_bucket_name_is_refused(aws):
    env = "e" * 40  # valid in table and queue names, but skynet-<env>-config-<account> exceeds 63 characters

    with pytest.raises(ResourceError, match="is not a valid S3 bucket name"):
        resolve(aws, env)


def test_an_explicit_bucket_s3_would_refuse_is_refused_with_its_setting_named(unreachable):
    with pytest.raises(ResourceError, match="repo bucket 'Acme_Repo' is not a valid S3 bucket name"):
        resolve(unreachable, "prod", settings("prod", SKYNET_CONFIG_BUCKET="acme-config",
                                              SKYNET_REPO_BUCKET="Acme_Repo"))


def test_bootstrap_creates_the_buckets_under_the_stacks_names(moto, aws):
    result = skynet(moto, "bootstrap", "--env", "boot", "--json")

    assert result.returncode == 0, result.stderr
    buckets = {b["Name"] for b in aws.s3.list_buckets()["Buckets"]}
    assert {f"skynet-boot-config-{MOTO_ACCOUNT}", f"skynet-boot-repo-{MOTO_ACCOUNT}"} <= buckets
    assert "skynet-boot-config" not in buckets and "skynet-boot-repo" not in buckets


def test_config_push_with_default_options_then_show_use_the_stacks_bucket(moto, aws, tmp_path: Path):
    bootstrap_env(aws, resolve(aws, "web"), ["web-api"])
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.json").write_text('{"greeting": "hello"}\n')

    pushed = skynet(moto, "config", "push", "--env", "web", str(tree))
    shown = skynet(moto, "config", "show", "--env", "web")

    assert pushed.returncode == 0, pushed.stderr
    assert "+ app.json" in pushed.stdout
    bucket = f"skynet-web-config-{MOTO_ACCOUNT}"
    stored = aws.s3.get_object(Bucket=bucket, Key="Environments/web/app.json")["Body"].read()
    assert stored == b'{"greeting": "hello"}\n'
    assert shown.returncode == 0, shown.stderr
    assert f"app.json:greeting  <-  s3://{bucket}/Environments/web/app.json" in shown.stdout


def test_logs_of_an_env_read_that_envs_bucket_whatever_skynet_env_says(moto, aws):
    # Given env local with a halted rollout and its update log, and env other with a decoy at the same key
    bootstrap_env(aws, resolve(aws, "local"), ["local-api"])
    seed(aws)
    other = resolve(aws, "other")
    bootstrap_env(aws, other, ["other-api"])
    aws.s3.put_object(Bucket=other.repo_bucket, Key="logs/updates/halted-2.log", Body=b"the other env's log\n")

    # When an operator whose shell is set up for env other (its bucket given explicitly) asks for local's logs
    result = skynet(moto, "logs", "--env", "local", HALTED, "--ticket", "2",
                    SKYNET_ENV="other", SKYNET_REPO_BUCKET=other.repo_bucket)

    # Then local's log is printed, from local's bucket
    assert result.returncode == 0, result.stderr
    assert "health check failed on purpose" in result.stdout
    assert "the other env's log" not in result.stdout


def test_a_bad_explicit_bucket_makes_the_cli_fail_clearly_and_upload_nothing(moto, aws, tmp_path: Path):
    bootstrap_env(aws, resolve(aws, "bad"), ["bad-api"])
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.json").write_text("{}\n")

    result = skynet(moto, "config", "push", "--env", "bad", str(tree), SKYNET_ENV="bad",
                    SKYNET_CONFIG_BUCKET="Bad_Bucket")

    assert result.returncode != 0
    assert "config bucket 'Bad_Bucket' is not a valid S3 bucket name" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=f"skynet-bad-config-{MOTO_ACCOUNT}")
