"""AWS's limits, met on moto's server: a query answers at most 1 MB a page, and every read goes on to the end.

moto stops a query's page at 1 MB as DynamoDB does (``RESULT_SIZE_LIMIT``), so each test first shows that
one plain query of its data stops short (``LastEvaluatedKey``), then that Skynet's read returns everything.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from skynet_tasks import names
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.config.sources import level_for, read_dynamo_level
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.registry import Registry
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(60)

ENV = "limits"


@pytest.fixture(scope="module")
def aws():
    server = MotoServer.start()
    try:
        aws = aws_for(server.environment())
        bootstrap_env(aws, resolve(aws, ENV), [f"{ENV}-api"])
        yield aws
    finally:
        server.stop()


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
    # Given 60 operator actions of 30 KB each (1.8 MB): the newest 50 do not fit in one page
    table = names.state_table(ENV)
    ledger = Ledger(aws.dynamodb, table)
    for n in range(60):
        ledger.record_action(f"{ENV}-api", {"at": 1_000_000 + n, "action": "pause", "by": "op",
                                            "note": f"{n}:" + "y" * 30_000})
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
