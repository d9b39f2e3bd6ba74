"""kombu's boto3 clients and the process's model loader (``skynet_tasks.compat.kombu_shared_loader``), against
moto's server: kombu alone gives each client a loader of its own (the "still needed" test: when it fails,
kombu shares one and the patch can go); with the patch, kombu's SQS client and a fan-out's SNS client use the
process's, and still reach the server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import kombu
import pytest

from skynet_tasks import aws
from skynet_tasks.compat import kombu_shared_loader
from skynet_tasks.local.motoserver import MotoServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    started = MotoServer.start()
    saved = dict(os.environ)
    os.environ.update(started.environment())
    try:
        yield started
    finally:
        os.environ.clear()
        os.environ.update(saved)
        started.stop()


def clients_of_a_channel() -> tuple[object, object]:
    """kombu's SQS client of a new channel, and the SNS client its fan-out would publish with."""
    with kombu.Connection("sqs://", transport_options={"supports_fanout": True}) as connection:
        channel = connection.default_channel
        return channel.sqs(), channel.fanout.get_client()


def test_still_needed_kombu_gives_each_client_a_loader_of_its_own(server):
    assert not kombu_shared_loader.PATCH.installed
    sqs, sns = clients_of_a_channel()
    assert sqs._loader is not aws._MODELS and sns._loader is not aws._MODELS  # type: ignore[attr-defined]


def test_with_the_patch_kombus_clients_share_the_processs_loader_and_reach_the_server(server):
    with kombu_shared_loader.PATCH.applied():
        sqs, sns = clients_of_a_channel()
    assert sqs._loader is aws._MODELS and sns._loader is aws._MODELS  # type: ignore[attr-defined]
    assert sqs.meta.endpoint_url == server.endpoint == sns.meta.endpoint_url  # type: ignore[attr-defined]
    assert "QueueUrl" in sqs.create_queue(QueueName="shared-loader")  # type: ignore[attr-defined]
    assert "TopicArn" in sns.create_topic(Name="shared-loader")  # type: ignore[attr-defined]
