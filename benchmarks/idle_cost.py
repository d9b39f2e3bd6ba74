"""What an idle cluster costs: AWS requests per instance per hour, and dollars per month at list prices.

Starts a local cluster with the production defaults (heartbeat 60 s, long polling 20 s,
no pause between polls), lets it idle, and counts every request the instances make at a
proxy in front of moto. It also reports what an idle instance costs its machine: the agent's CPU
seconds per hour, its processes and their PSS, and how long a worker took from its process's start
to its first registration (the registry entry's first heartbeat). ``--heartbeat`` and
``--poll-interval`` (``SKYNET_POLL_INTERVAL``) measure other settings.

    .venv/bin/python -m benchmarks.idle_cost --instances 3 --seconds 180 [--out results/idle.json]
    .venv/bin/python -m benchmarks.idle_cost --heartbeat 300 --poll-interval 15   # the economy settings
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.clusters import CountedCluster
from benchmarks.countingproxy import CountingProxy
from benchmarks.memory import agent_memory
from benchmarks.proc_times import cpu_seconds, started_at
from benchmarks.report import write_json
from skynet_tasks import names
from skynet_tasks.local.cluster_info import ClusterInfo
from skynet_tasks.registry import Registry

# us-east-1 list prices (2026): SQS standard/FIFO per million requests, DynamoDB on-demand per million
# read/write request units, S3 GET per million. Each SQS request of up to 64 KB is one request.
PRICE_PER_MILLION = {"sqs": 0.40, "sqs_fifo": 0.50, "dynamodb_read": 0.125, "dynamodb_write": 0.625, "s3": 0.40}
DYNAMO_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
HOURS_PER_MONTH = 730


def monthly_cost(per_instance_hour: Counter[str], instances: int) -> float:
    dollars = 0.0
    for kind, count in per_instance_hour.items():
        dollars += count * instances * HOURS_PER_MONTH * PRICE_PER_MILLION[kind] / 1e6
    return round(dollars, 2)


def start_to_registered(cluster: CountedCluster, info: ClusterInfo) -> list[float]:
    """Per instance, seconds from its worker process's start to its first registration.

    Read right after ``up``: with a heartbeat interval of a minute, each entry's heartbeat is still
    its first.
    """
    heartbeats = {e.instance_id: e.heartbeat for e in
                  Registry(cluster.aws().dynamodb, names.endpoints_table("local")).endpoints("local")}
    return sorted(round(heartbeats[i.id] - started_at(i.pid), 2) for i in info.instances if i.id in heartbeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--heartbeat", type=float, default=60)
    parser.add_argument("--poll-interval", type=float, default=0, help="SKYNET_POLL_INTERVAL, seconds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    proxy = CountingProxy()
    cluster = CountedCluster(Path(tempfile.mkdtemp(prefix="skynet-idle-")), proxy,
                             heartbeat_interval=args.heartbeat, heartbeat_max_age=args.heartbeat * 10)
    cluster.extra_env["SKYNET_POLL_INTERVAL"] = str(args.poll_interval)
    try:
        info = cluster.up(api=args.instances)
        registered = start_to_registered(cluster, info)
        time.sleep(10)  # let boot traffic settle
        before, cpu_before = proxy.snapshot(), {i.id: cpu_seconds(i.pid) for i in info.instances}
        time.sleep(args.seconds)
        after, cpu_after = proxy.snapshot(), {i.id: cpu_seconds(i.pid) for i in info.instances}
        memory = agent_memory(info)
    finally:
        cluster.down()
        proxy.stop()
    delta = after - before
    scale = 3600 / args.seconds / args.instances
    by_operation = {f"{service} {operation}": round(count * scale, 1) for (service, operation), count in
                    sorted(delta.items())}
    kinds: Counter[str] = Counter()
    for (service, operation), count in delta.items():
        kind = ("dynamodb_write" if operation in DYNAMO_WRITES else "dynamodb_read") if service == "dynamodb" \
            else service
        kinds[kind] += round(count * scale)
    sqs_per_10s = kinds["sqs"] / 360
    result = {
        "instances": args.instances, "seconds": args.seconds, "heartbeat_interval": args.heartbeat,
        "poll_interval": args.poll_interval,
        "requests_per_instance_hour": dict(kinds), "by_operation_per_instance_hour": by_operation,
        "sqs_requests_per_instance_per_10s": round(sqs_per_10s, 2),
        "monthly_cost_usd": {n: monthly_cost(kinds, n) for n in (10, 100, 1000)},
        "cpu_seconds_per_idle_instance_hour": round(
            sum(cpu_after[i] - cpu_before[i] for i in cpu_after) * 3600 / args.seconds / args.instances, 1),
        "start_to_registered_s": registered,
        "idle_memory": memory,
    }
    print(json.dumps(result, indent=2))
    write_json(result, args.out)


if __name__ == "__main__":
    main()
