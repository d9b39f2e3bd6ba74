"""The floor a hand-off cannot go below, measured on the same moto server and the same kind of workers.

A hand-off is: the reporting instance's message travels through the group's FIFO queue to a
conductor worker, which reads the group's state and writes its decision in one transaction, then
sends the update to the next instance's queue, whose worker picks it up. Two SQS hops through
idle long-polling Celery workers, and one transactional read + write. This module measures exactly
that with nothing of Skynet's logic:

- ``relay``: a task sent to a FIFO queue, whose worker sends a task to a second worker's queue,
  which records when it started (each worker a real ``celery worker`` process with Skynet's
  Celery settings: prefork, concurrency 1, prefetch 1, the same long polling);
- ``transaction``: a consistent GetItem followed by a conditional TransactWriteItems on the
  env's state table.

The rollout benchmark reports each hand-off as a multiple of ``relay + transaction`` (p50s), so
its targets hold on any machine: a slow machine slows the floor as much as the hand-off.

    .venv/bin/python -m benchmarks.floor   # [DIR]: against a running `skynet local up` cluster (default .local-cluster)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kombu.pools
from celery import Celery

from benchmarks.report import percentile
from skynet_tasks import names
from skynet_tasks.app import app as skynet_app
from skynet_tasks.app import configure
from skynet_tasks.compat import install_kombu_patches
from skynet_tasks.settings import Settings

RELAY_TASK, LAND_TASK = "bench.floor.relay", "bench.floor.land"
SAMPLES = 60  # of each part: 20 left the ratio moving with the floor from one run to the next


def relay_queue(env: str) -> str:
    """The FIFO queue the first hop goes through (like a group's maintenance queue)."""
    return f"{names.prefix(env)}bench-floor-relay.fifo"


def land_queue(env: str) -> str:
    """The standard queue of the second hop (like an instance's own queue)."""
    return f"{names.prefix(env)}bench-floor-land"


def _app() -> Celery:
    app = configure(Celery("skynet-floor"), Settings.from_env())
    app.conf.include = []

    @app.task(name=RELAY_TASK)
    def relay(sent_at: float, out: str) -> None:
        app.send_task(LAND_TASK, args=[sent_at, out], queue=land_queue(app.conf.skynet_settings.env))

    @app.task(name=LAND_TASK)
    def land(sent_at: float, out: str) -> None:
        with open(out, "a") as landed:
            landed.write(json.dumps(time.time() - sent_at) + "\n")

    return app


def run_worker(queue: str) -> None:
    """A worker of ``queue`` started as an instance's worker is (workers/launch.py ``run_celery``)."""
    install_kombu_patches()
    # Skynet's own app too: its logging setup (skynet_tasks.app) runs for every worker of the process.
    configure(skynet_app, Settings.from_env())
    _app().worker_main(["worker", "--queues", queue, "--concurrency", "1", "--prefetch-multiplier", "1",
                        "--hostname", f"{queue}@bench", "--loglevel", "WARNING",
                        "--without-mingle", "--without-gossip", "--without-heartbeat"])


def _start_worker(queue: str, environment: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "benchmarks.floor", "worker", queue],
                                env={**os.environ, **environment}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_lines(path: Path, count: int, timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return [float(line) for line in lines]
        time.sleep(0.01)
    raise TimeoutError(f"the floor relay landed {count} messages? not within {timeout} s")


def measure_relay(environment: Mapping[str, str], sqs: Any, samples: int = SAMPLES) -> list[float]:
    """Seconds from sending to a FIFO queue until a second worker starts the relayed task, ``samples`` times."""
    env = environment["SKYNET_ENV"]
    for queue in (relay_queue(env), land_queue(env)):
        attributes = {"FifoQueue": "true"} if queue.endswith(".fifo") else {}
        sqs.create_queue(QueueName=queue, Attributes=attributes)
    directory = Path(tempfile.mkdtemp(prefix="skynet-floor-"))
    out = directory / "landed"
    workers = [_start_worker(queue, environment, directory / f"{queue}.log")
               for queue in (relay_queue(env), land_queue(env))]
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    kombu.pools.reset()  # no pooled connection to a previous size's moto server
    try:
        sender = configure(Celery("skynet-floor-sender"), Settings.from_env())
        # The workers' first receive: wait until a warm-up message went all the way through.
        sender.send_task(RELAY_TASK, args=[time.time(), str(out)], queue=relay_queue(env),
                         MessageGroupId="floor", MessageDeduplicationId=f"warm-{time.time()}")
        _wait_lines(out, 1, timeout=60)
        for n in range(samples):
            time.sleep(0.3)  # the workers are back in their long poll, as between two hand-offs
            sender.send_task(RELAY_TASK, args=[time.time(), str(out)], queue=relay_queue(env),
                             MessageGroupId="floor", MessageDeduplicationId=f"{n}-{time.time()}")
            _wait_lines(out, n + 2, timeout=30)
        return _wait_lines(out, samples + 1, timeout=1)[1:]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        for queue in (relay_queue(env), land_queue(env)):
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"])


def measure_transaction(dynamodb: Any, table: str, samples: int = SAMPLES) -> list[float]:
    """Seconds of a consistent read and a conditional transactional write of one item, ``samples`` times."""
    key = {"pk": {"S": "bench#floor"}, "sk": {"S": "state"}}
    dynamodb.put_item(TableName=table, Item={**key, "version": {"N": "0"}})
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        version = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["version"]["N"]
        dynamodb.transact_write_items(TransactItems=[{"Update": {
            "TableName": table, "Key": key, "UpdateExpression": "SET version = :next",
            "ConditionExpression": "version = :seen",
            "ExpressionAttributeValues": {":seen": {"N": version}, ":next": {"N": str(int(version) + 1)}}}}])
        timings.append(time.perf_counter() - started)
    dynamodb.delete_item(TableName=table, Key=key)
    return timings


def measure_floor(environment: Mapping[str, str], sqs: Any, dynamodb: Any) -> dict[str, float]:
    """The floor's parts and their sum (p50s), in seconds."""
    relay = measure_relay(environment, sqs)
    transaction = measure_transaction(dynamodb, names.state_table(environment["SKYNET_ENV"]))
    relay_p50, transaction_p50 = percentile(relay, 0.5), percentile(transaction, 0.5)
    return {"relay_p50_s": round(relay_p50, 4), "relay_p95_s": round(percentile(relay, 0.95), 4),
            "transaction_p50_s": round(transaction_p50, 4), "floor_s": round(relay_p50 + transaction_p50, 4)}


def main() -> None:
    from skynet_tasks.local.cluster import LocalCluster

    if sys.argv[1:2] == ["worker"]:
        run_worker(sys.argv[2])
        return
    cluster = LocalCluster(Path(sys.argv[1] if len(sys.argv) > 1 else ".local-cluster"))
    info = cluster.require_info()
    aws = cluster.aws()
    print(json.dumps(measure_floor(info.environment, aws.sqs, aws.dynamodb)))


if __name__ == "__main__":
    main()
