"""The maintenance FIFO queue is consumed one message at a time (celery issue 8352).

kombu receives as many messages per ReceiveMessage as the QoS prefetch allows, and
the messages of one FIFO group it holds are then all in flight at once. With the
worker's settings (prefetch 1, concurrency 1), a consumer must hold exactly one.
"""

from __future__ import annotations

import os

import kombu.pools
import pytest
from kombu import Connection, Queue

from skynet_tasks import names
from skynet_tasks.app import create_app
from skynet_tasks.aws import aws_for
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import Messenger
from skynet_tasks.queues import Queues, group_queues

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def moto_env():
    server = MotoServer.start()
    saved = dict(os.environ)
    os.environ.update(server.environment())
    kombu.pools.reset()
    yield server.environment()
    kombu.pools.reset()  # no pooled connection to this server outlives it
    os.environ.clear()
    os.environ.update(saved)
    server.stop()


def test_the_worker_is_configured_for_one_message_at_a_time():
    app = create_app()
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.worker_concurrency == 1
    assert app.conf.task_acks_late is True
    assert app.conf.worker_enable_remote_control is False


def fifo_in_flight_after_one_receive(moto_env: dict[str, str], group: str, prefetch: int) -> tuple[int, dict]:
    """Put five events of one group in its FIFO queue, receive once with ``prefetch``; return what is held."""
    aws = aws_for(moto_env)
    queues = Queues(aws.sqs)
    maint = next(q for q in group_queues("local", group) if q.fifo)
    queues.ensure(maint)
    app = create_app()
    messenger = Messenger(app, "local")
    for n in range(5):
        messenger.maintenance(group, {"type": "tick", "n": n}, f"event-{n}")
    assert queues.depth(maint.name)["visible"] == 5

    received: list = []
    with Connection(app.conf.broker_url, transport_options={**app.conf.broker_transport_options,
                                                             "wait_time_seconds": 1}) as connection:
        channel = connection.channel()
        channel.basic_qos(0, prefetch, False)
        queue = Queue(maint.name, routing_key=maint.name, channel=channel)
        with connection.Consumer(queue, callbacks=[lambda body, message: received.append(message)],
                                 accept=["json"], channel=channel):
            connection.drain_events(timeout=10)
            depth = queues.depth(names.maintenance_queue("local", group))
            for message in received:
                message.ack()
    return len(received), depth


def test_with_the_workers_prefetch_a_consumer_holds_one_fifo_message_and_leaves_the_rest(moto_env):
    app = create_app()
    held, depth = fifo_in_flight_after_one_receive(
        moto_env, "fifo-one", prefetch=app.conf.worker_prefetch_multiplier * app.conf.worker_concurrency)
    assert held == 1
    assert depth == {"visible": 4, "in_flight": 1, "delayed": 0}


def test_with_a_larger_prefetch_one_receive_takes_several_messages_of_the_group(moto_env):
    # The hazard the worker's settings avoid: these would then run in parallel.
    held, depth = fifo_in_flight_after_one_receive(moto_env, "fifo-many", prefetch=4)
    assert held > 1
    assert depth["in_flight"] == held
