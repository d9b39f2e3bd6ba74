"""The webhook receiver: verified requests per second, and a signed push's latency to SQS.

Starts moto's server and the receiver (as ``skynet local up`` does), then sends signed pings
(verified but enqueue nothing) from several threads, and signed pushes one at a time,
timing each from the request to the build request being receivable from the group's maintenance queue.

    .venv/bin/python -m benchmarks.webhook [--pings 500] [--pushes 30] [--out results/webhook.json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.report import percentile, write_json
from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.processes import stop_process_group
from skynet_tasks.resources import resolve
from skynet_tasks.webhook.local import push_payload, send_webhook, start_local_receiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pings", type=int, default=500)
    parser.add_argument("--pushes", type=int, default=30)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="skynet-webhook-bench-"))
    server = MotoServer.start()
    receiver = None
    try:
        aws = aws_for(server.environment())
        bootstrap_env(aws, resolve(aws, "local"), ["local-api"])
        repo = directory / "repos" / "sample-app.git"
        Ledger(aws.dynamodb, names.state_table("local")).ensure_group("local-api", str(repo), "main")
        receiver = start_local_receiver(directory, server.environment(), repo)
        secret = Path(receiver.secret_file).read_bytes().strip()

        started = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            statuses = list(pool.map(lambda _: send_webhook(receiver.url, secret, "ping", {"hook_id": 1})[0],
                                     range(args.pings)))
        elapsed = time.perf_counter() - started
        assert all(status == 200 for status in statuses)

        queue = aws.sqs.get_queue_url(QueueName=names.maintenance_queue("local", "local-api"))["QueueUrl"]
        latencies = []
        for _ in range(args.pushes):
            sha = secrets.token_hex(20)
            sent = time.perf_counter()
            status, _ = send_webhook(receiver.url, secret, "push", push_payload("sample-app", "main", "1" * 40, sha))
            assert status == 202
            while True:
                got = aws.sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
                if got:
                    latencies.append(time.perf_counter() - sent)
                    aws.sqs.delete_message(QueueUrl=queue, ReceiptHandle=got[0]["ReceiptHandle"])
                    break
    finally:
        if receiver is not None:
            stop_process_group(receiver.pid, grace=5)
        server.stop()
    result = {"verified_requests_per_second": round(args.pings / elapsed, 1), "threads": args.threads,
              "push_to_sqs_median_ms": round(statistics.median(latencies) * 1000, 1),
              "push_to_sqs_p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
              "pushes": len(latencies), "cpu_count": os.cpu_count()}
    print(json.dumps(result, indent=2))
    write_json(result, args.out)


if __name__ == "__main__":
    main()
