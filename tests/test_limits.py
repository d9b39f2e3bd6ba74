"""AWS's limits, met on moto's server: 1 MB query pages, SQS's message size, and the registry's item.

moto stops a query's page at 1 MB as DynamoDB does (``RESULT_SIZE_LIMIT``), so each query test first
shows that one plain query of its data stops short (``LastEvaluatedKey``), then that Skynet's read
returns everything. moto takes messages up to 1 MiB; Skynet refuses them above 256 KiB at the sender.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu.pools
import pytest

from skynet_tasks import names
from skynet_tasks.app import create_app
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.config.sources import level_for, read_dynamo_level
from skynet_tasks.ledger import Ledger
from skynet_tasks.ledger.audit import MAX_FIELD
from skynet_tasks.ledger.item_size import MAX_ITEM_BYTES, item_size, write_units
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import (
    MAINTENANCE_TASK,
    MAX_MESSAGE_BYTES,
    MessageTooLarge,
    Messenger,
    _dedup_id,
    sqs_message_size,
)
from skynet_tasks.queues import Queues, group_queues
from skynet_tasks.registration import OUTCOME_LIMIT
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.settings import Settings

pytestmark = pytest.mark.timeout(60)

ENV = "limits"


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    server = MotoServer.start()
    try:
        bootstrap_env(aws_for(server.environment()), resolve(aws_for(server.environment()), ENV), [f"{ENV}-api"])
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws(server: MotoServer) -> Aws:
    return aws_for(server.environment())


@pytest.fixture(scope="module")
def messenger(server: MotoServer, aws: Aws) -> Iterator[Messenger]:
    """A sender as the CLI makes one: a Celery app whose broker is the moto server (through the environment)."""
    saved = dict(os.environ)
    os.environ.update(server.environment())
    kombu.pools.reset()
    try:
        queues = Queues(aws.sqs)
        for queue in group_queues(ENV, f"{ENV}-api"):
            queues.ensure(queue)
        yield Messenger(create_app(), ENV)
    finally:
        kombu.pools.reset()  # no pooled connection to this server outlives it
        os.environ.clear()
        os.environ.update(saved)


def batch_put(aws: Aws, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
        while requests:
            unprocessed = aws.dynamodb.batch_write_item(RequestItems={table: requests}).get("UnprocessedItems", {})
            requests = unprocessed.get(table, [])


def first_page_is_short(aws: Aws, table: str, key: str, value: str) -> bool:
    """One plain query of the partition stops before its end: the data really passes 1 MB."""
    page = aws.dynamodb.query(TableName=table, KeyConditionExpression="#k = :v", ExpressionAttributeNames={"#k": key},
                              ExpressionAttributeValues={":v": {"S": value}}, ConsistentRead=True)
    return "LastEvaluatedKey" in page


def registry_entry(layer: str, number: int, now: float) -> dict[str, Any]:
    # A long last outcome (1.5 KB) stands for many more entries of the usual 300 bytes: moto takes
    # seconds to serve a page of thousands of small map entries, a long string costs it nothing.
    return {"M": {"group": {"S": f"{ENV}-{layer}"}, "address": {"S": f"10.1.{number // 250}.{number % 250 + 1}"},
                  "port": {"N": "8080"}, "release": {"S": "a" * 40}, "health": {"S": "healthy"},
                  "heartbeat": {"N": str(now)}, "agent_version": {"S": "0.1.0"},
                  "config_version": {"S": "c" * 40}, "last_task": {"S": "skynet.re_register"},
                  "last_outcome": {"S": "ok " * 500}, "synced_at": {"N": "0"}}}


def test_every_instance_of_an_env_is_read_when_its_layers_pass_one_page(aws):
    # Given four layers of 200 instances each (about 330 KB per layer item: 1.3 MB for the env)
    now, per_layer = time.time(), 200
    layers = ["api", "jobs", "rp", "web"]
    table = names.endpoints_table(ENV)
    batch_put(aws, table, [{"env": {"S": ENV}, "layer": {"S": layer}, "instances": {"M": {
        f"i-{layer}-{n:05d}": registry_entry(layer, n, now) for n in range(per_layer)}}} for layer in layers])
    assert first_page_is_short(aws, table, "env", ENV)

    # When the registry is read whole, Then every instance of every layer is there
    registry = Registry(aws.dynamodb, table)
    assert len(registry.live(ENV, None, 60)) == len(layers) * per_layer
    assert registry.find(ENV, f"i-web-{per_layer - 1:05d}") is not None  # the last layer, past the first page


def test_a_rollout_is_read_whole_past_one_page(aws):
    # Given a rollout whose tickets carry long errors: 400 tickets of 3 KB, 1.2 MB in its partition
    table, count = names.state_table(ENV), 400
    ledger = Ledger(aws.dynamodb, table)
    batch_put(aws, table, [{"pk": {"S": "rollout#r-big"}, "sk": {"S": "rollout"}, "group": {"S": f"{ENV}-api"},
                            "release": {"S": "b" * 40}, "kind": {"S": "code"}, "state": {"S": "halted"}}]
              + [{"pk": {"S": "rollout#r-big"}, "sk": {"S": f"ticket#{n:06d}"}, "number": {"N": str(n)},
                  "instance": {"S": f"i-{n:05d}"}, "state": {"S": "failed"}, "error": {"S": "x" * 3000}}
                 for n in range(1, count + 1)])
    assert first_page_is_short(aws, table, "pk", "rollout#r-big")

    view = ledger.rollout_view("r-big")

    assert view is not None and [t["number"] for t in view["tickets"]] == list(range(1, count + 1))


def test_the_latest_operator_actions_are_all_read_even_when_they_pass_one_page(aws):
    # Given 60 operator actions of 30 KB each (1.8 MB): the newest 50 do not fit in one page (each field is
    # cut to audit.MAX_FIELD characters, so the bulk is spread over fields)
    table = names.state_table(ENV)
    ledger = Ledger(aws.dynamodb, table)
    for n in range(60):
        notes = {f"note{k}": f"{n}:" + "y" * (MAX_FIELD - 10) for k in range(30_000 // MAX_FIELD)}
        ledger.record_action(f"{ENV}-api", {"at": 1_000_000 + n, "action": "pause", "by": "op", **notes})
    assert first_page_is_short(aws, table, "pk", f"audit#{ENV}-api")

    actions = ledger.actions(f"{ENV}-api", 50)

    assert [a["at"] for a in actions] == [1_000_000 + n for n in range(59, 9, -1)]  # the newest 50, newest first


def test_a_config_level_is_read_whole_past_one_page(aws):
    # Given five config items of 300 KB in the env's level (1.5 MB)
    table, level = names.config_table(ENV), level_for(ENV, None)
    batch_put(aws, table, [{"scope": {"S": level.scope}, "path": {"S": f"big/{n}.txt"},
                            "content": {"S": str(n) * 300_000}} for n in range(5)])
    assert first_page_is_short(aws, table, "scope", level.scope)

    pieces = read_dynamo_level(aws.dynamodb, table, level)

    assert sorted(pieces) == [f"big/{n}.txt" for n in range(5)]
    assert all(len(piece.data) == 300_000 for piece in pieces.values())


def received_bodies(aws: Aws, queue: str) -> list[str]:
    url = aws.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    bodies = []
    while messages := aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_a_message_over_256_kib_is_refused_at_the_sender_naming_the_task_and_its_size(aws, messenger):
    # Given an event whose payload is 200 KB of text (base64 twice over, it would pass 256 KiB)
    event = {"type": "tick", "note": "x" * 200_000}
    queue = names.maintenance_queue(ENV, f"{ENV}-api")

    # When it is sent, Then it is refused before anything reaches the queue
    with pytest.raises(MessageTooLarge) as refused:
        messenger.maintenance(f"{ENV}-api", event, "too-big")
    assert MAINTENANCE_TASK in str(refused.value) and queue in str(refused.value)
    size = int(str(refused.value).split(": ")[1].split(" bytes")[0])
    assert size > MAX_MESSAGE_BYTES and str(MAX_MESSAGE_BYTES) in str(refused.value)
    with pytest.raises(MessageTooLarge, match="skynet.update"):
        messenger.to_instance("i-big", "skynet.update", {"note": "y" * 200_000}, expires=60)
    assert received_bodies(aws, queue) == []


def test_the_size_counted_is_what_sqs_receives_and_a_message_just_under_the_limit_goes(aws, messenger):
    group, queue = f"{ENV}-api", names.maintenance_queue(ENV, f"{ENV}-api")

    def size(note: str, dedup: str) -> int:
        return sqs_message_size(messenger.app, MAINTENANCE_TASK, {"group": group, "event": {"note": note}}, queue,
                                {"MessageGroupId": group, "MessageDeduplicationId": _dedup_id(f"{group}:{dedup}")})

    # The size grows by 16/9 of a byte per payload byte (base64 twice), plus Celery's repr of the
    # arguments (up to 1 KB): find the longest note that fits.
    longest = int((MAX_MESSAGE_BYTES - size("", "d") - 1400) * 9 / 16)
    while size("z" * (longest + 1), "d") <= MAX_MESSAGE_BYTES:
        longest += 1
    assert size("z" * longest, "d") > MAX_MESSAGE_BYTES - 8  # at the limit, to base64's step of 4 bytes
    for n, note in enumerate(["", "é" * 50, "z" * longest]):
        messenger.maintenance(group, {"note": note}, f"fits-{n}")
        (body,) = received_bodies(aws, queue)
        counted = size(note, f"fits-{n}")
        assert len(body) <= counted <= len(body) + 100, note[:10]  # never below: ids counted at full length
    with pytest.raises(MessageTooLarge):
        messenger.maintenance(group, {"note": "z" * (longest + 60)}, "one-too-many")

    # A directed message with an expiry is counted the same way
    messenger.to_instance("i-small", "skynet.update", {"rollout": "r-1", "ticket": 3}, expires=60)
    (body,) = received_bodies(aws, names.instance_queue(ENV, "i-small"))
    counted = sqs_message_size(messenger.app, "skynet.update", {"rollout": "r-1", "ticket": 3},
                               names.instance_queue(ENV, "i-small"), expires=60)
    assert len(body) <= counted <= len(body) + 100


# ---- the registry's one item per (env, layer): how many entries it holds, what a heartbeat costs

PARTITION_WRITE_UNITS = 1_000  # what one partition, so one item, takes a second (DynamoDB's documented limit)
AWS_MD = Path(__file__).resolve().parent.parent / "docs" / "aws.md"


def heartbeat_entry(number: int, now: float, **changes: Any) -> Endpoint:
    """An api instance's entry as its heartbeat writes it (``registration.register_self``), with EC2's ids."""
    fields: dict[str, Any] = {
        "instance_id": f"i-{number:017x}", "group": "prod-api", "address": f"10.0.{number // 250}.{number % 250 + 1}",
        "port": 8080, "release": "a" * 40, "health": "healthy", "heartbeat": now, "agent_version": "0.1.0",
        "config_version": "cfg-0123456789abcdef", "last_task": "re_register (heartbeat)", "last_outcome": "",
        "synced_at": 0.0}
    return Endpoint(**{**fields, **changes})


def test_a_layers_registry_item_and_what_a_heartbeat_costs_measured_by_dynamodbs_rules(aws):
    # Given a layer's item, as instances' heartbeats write it
    # A heartbeat time as time.time() gives it (17 significant digits): a number's size follows its digits.
    registry, table = Registry(aws.dynamodb, names.endpoints_table(ENV)), names.endpoints_table(ENV)
    now = 1764628821.5293427

    def size() -> int:
        key = {"env": {"S": "prod"}, "layer": {"S": "api"}}
        return item_size(aws.dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])

    sizes = []
    for number in range(3):
        registry.register("prod", "api", heartbeat_entry(number, now))
        sizes.append(size())
    entry = sizes[1] - sizes[0]
    assert sizes[2] - sizes[1] == entry
    empty = sizes[0] - entry
    registry.register("prod", "api", heartbeat_entry(2, now, last_task="update r20261201-223344-abcdef#12",
                                                     last_outcome=("failed: " + "x" * OUTCOME_LIMIT)[:OUTCOME_LIMIT]))
    failed = size() - sizes[1]

    # Then: the entries one item holds, and the write units of one heartbeat in a layer of n instances
    ceiling = (MAX_ITEM_BYTES - empty) // entry

    def heartbeat_units(n: int) -> int:
        return write_units(empty + n * entry, empty + n * entry)  # an UpdateItem pays for the larger of before/after

    interval = Settings().heartbeat_interval
    throttled = next(n for n in range(1, ceiling) if n * heartbeat_units(n) / interval > PARTITION_WRITE_UNITS)
    assert 200 < entry < 300 and 500 < failed <= 600 and empty < 50
    # docs/aws.md, "Limits: the largest group", states these figures: they are the measured ones
    stated = AWS_MD.read_text()
    for figure in (f"{entry} bytes", f"{failed} bytes", f"{ceiling:,} entries", f"past about **{throttled}**",
                   f"{heartbeat_units(100)} write units", f"{heartbeat_units(300)} write units"):
        assert figure in stated, figure
