"""One env on a moto server for the dead-letter tests: its clients, the group's queue (visibility timeout
of one second, where the stack's is 20 s), a conductor worker on demand, and the operator's CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu.pools
import pytest
from click.testing import CliRunner

from skynet_tasks import names
from skynet_tasks.app import create_app
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.cli import main
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import MAINTENANCE_TASK, Messenger
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.taskruns import TaskRuns

ENV = "local"
MEMBER = "dlq-a"
VISIBILITY = 1  # seconds: the test queue's visibility timeout


class Env:
    """One env on a moto server: its clients, the group's queue names, and a conductor worker on demand."""

    def __init__(self, server: MotoServer, group: str, tmp: Path) -> None:
        self.server, self.group, self.tmp = server, group, tmp
        self.environment = {**server.environment(), "SKYNET_ENV": ENV}
        self.aws: Aws = aws_for(self.environment)
        self.resources = resolve(self.aws, ENV)
        bootstrap_env(self.aws, self.resources, [group])
        self.queue = names.maintenance_queue(ENV, group)
        self.dead_letter_queue = names.dead_letter_queue(self.queue)
        url = self.aws.sqs.get_queue_url(QueueName=self.queue)["QueueUrl"]
        self.aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(VISIBILITY)})
        self.ledger = Ledger(self.aws.dynamodb, self.resources.state_table)
        Registry(self.aws.dynamodb, self.resources.endpoints_table).register(
            ENV, "api", Endpoint(MEMBER, group, "127.0.0.1", 9000, "old", "healthy", time.time()))
        self.worker: subprocess.Popen[str] | None = None

    def start_conductor(self) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SKYNET_")}
        environment.update(self.environment, SKYNET_INSTANCE_ID=MEMBER, SKYNET_GROUP=self.group,
                           SKYNET_ROOT=str(self.tmp / MEMBER), SKYNET_POLL_WAIT="1", PYTHONPATH=os.getcwd())
        self.worker = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "skynet_tasks.cli", "worker", "--role", "conductor", "--loglevel", "INFO"],
            env=environment, stdout=open(self.tmp / "conductor.log", "w"), stderr=subprocess.STDOUT, text=True)

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()

    def messenger(self) -> Messenger:
        kombu.pools.reset()  # no pooled connection to another test's server
        os.environ.update(self.environment)
        return Messenger(create_app(), ENV)

    def depth(self, queue: str) -> int:
        return sum(Queues(self.aws.sqs).depth(queue).values())

    def maintenance_runs(self) -> list[Any]:
        return [run for run in TaskRuns(self.aws.dynamodb, self.resources.state_table).recent(MEMBER, 50)
                if run.task == MAINTENANCE_TASK]

    def log(self) -> str:
        return (self.tmp / "conductor.log").read_text(errors="replace")[-3000:]


@pytest.fixture(name="env")
def env_on_moto(tmp_path: Path) -> Iterator[Env]:
    """The fixture ``env``: an ``Env`` on a moto server of the test's own, in this process's environment."""
    saved = dict(os.environ)
    server = MotoServer.start()
    found = Env(server, "local-api", tmp_path)
    os.environ.update(found.environment)  # for the CLI, as an operator's shell would have it
    try:
        yield found
    finally:
        found.stop()
        kombu.pools.reset()
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output
