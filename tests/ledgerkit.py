"""A moto server with the local env's tables and queues made, as a conductor's ledger sees them."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.client
import pytest
from clusterkit import sender_for

from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.conductor import Decision, Group, TicketTaken
from skynet_tasks.context import Context
from skynet_tasks.ledger import Conflict, Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.resources import resolve
from skynet_tasks.settings import Settings
from skynet_tasks.step import decide_and_write_until_settled


@contextmanager
def requests_made(thread: str | None = None) -> Iterator[list[str]]:
    """The AWS operations (``DeleteMessageBatch``…) made within, by any client, from the thread named ``thread`` (by
    default the caller's); they still go to the server."""
    made: list[str] = []
    name = thread or threading.current_thread().name
    original = botocore.client.BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        if threading.current_thread().name == name:
            made.append(operation)
        return original(self, operation, params)

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", counted):
        yield made


@contextmanager
def sqs_on_moto() -> Iterator[Any]:
    """A new moto server, this process's environment pointed at it (as kombu's ``sqs://`` reads it), and an SQS
    client of it; the server stopped and the environment restored on exit."""
    with pytest.MonkeyPatch.context() as patch:
        server = MotoServer.start()
        try:
            for key, value in server.environment().items():
                patch.setenv(key, value)
            patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
            yield boto3.client("sqs")
        finally:
            server.stop()


@contextmanager
def bootstrapped_moto(groups: list[str], env: str = "local") -> Iterator[tuple[MotoServer, Aws]]:
    """A new moto server with env ``env`` bootstrapped for ``groups``, and its clients; stopped on exit."""
    server = MotoServer.start()
    try:
        aws = aws_for(server.environment())
        bootstrap_env(aws, resolve(aws, env), groups)
        yield server, aws
    finally:
        server.stop()


class AnotherStepWritesFirst:
    """The ledger, except that before each of its first ``times`` writes (every one while ``others`` last, by
    default) another member's ticket request is decided and written: this step's write then loses."""

    def __init__(self, ledger: Ledger, group: str, rollout_id: str, others: list[str], members: Collection[str],
                 times: int | None = None) -> None:
        self.ledger, self.group, self.rollout_id, self.others = ledger, group, rollout_id, others
        self.members = members
        self.times = len(others) if times is None else times
        self.refused = 0

    def write_decision(self, before: Group, decision: Decision) -> None:
        if self.times and self.others:
            self.times -= 1
            decide_and_write_until_settled(self.ledger, self.group, TicketTaken(self.rollout_id, self.others.pop(0)),
                                           self.members)
        try:
            self.ledger.write_decision(before, decision)
        except Conflict:
            self.refused += 1
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self.ledger, name)


def instance_context(server: MotoServer, aws: Aws, root: Path, instance: str, group: str | None = None) -> Context:
    """The Context of instance ``instance`` (of ``group``) on ``server``, its files under ``root``."""
    settings = Settings.from_env({"SKYNET_ENV": "local", "SKYNET_INSTANCE_ID": instance,
                                  **({"SKYNET_GROUP": group} if group else {}),
                                  "SKYNET_ROOT": str(root / "root"), "SKYNET_CONFIG_DIR": str(root / "config")})
    return Context.create(settings, sender_for({**server.environment(), "SKYNET_ENV": "local"}).app, aws)
