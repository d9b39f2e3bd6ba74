"""A pool process warms up before its first task (skynet_tasks.tasks.base.warm_up), and never fails for it."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

from benchmarks.countingproxy import CountingProxy
from skynet_tasks.local.motoserver import MotoServer

pytestmark = pytest.mark.timeout(120)

# Run in a process of its own: the warm-up fills process-wide state (the task context, the app's producers).
WARM_UP_THEN_SEND = """
import sys
from skynet_tasks import tasks
from skynet_tasks.app import app, configure
from skynet_tasks.settings import Settings
configure(app, Settings.from_env())  # as the worker does at start
tasks.base.warm_up()
print("warm", flush=True)
sys.stdin.readline()  # the test counts what the warm-up asked of AWS, then lets the process send
messenger = tasks.base.SkynetTask.context().messenger
messenger.to_instance("api-1", "skynet.take_ticket", {"rollout_id": "r-1"})
messenger.maintenance("local-api", {"kind": "update_reported"}, "report-1")  # how an update reports
print("sent", flush=True)
"""


def run_warm_up(environment: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WARM_UP_THEN_SEND], env={**os.environ, **environment},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_after_the_warm_up_a_message_to_an_instance_or_a_conductor_is_one_request():
    server, proxy = MotoServer.start(), CountingProxy()
    try:
        proxy.upstream = server.endpoint
        sqs = boto3.client("sqs", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106 - moto's dummy
        url = sqs.create_queue(QueueName="skynet-local-inst-api-1")["QueueUrl"]
        maintenance = sqs.create_queue(QueueName="skynet-local-local-api-maint.fifo",
                                       Attributes={"FifoQueue": "true"})["QueueUrl"]
        process = run_warm_up({**server.environment(), "AWS_ENDPOINT_URL": proxy.url})
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == "warm"
        warmed = proxy.snapshot()
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "sent"
        process.wait(30)
        first_send = proxy.snapshot() - warmed

        assert warmed[("sqs", "ListQueues")] >= 1  # the broker channel was opened during the warm-up
        # No channel to open, and no declaration of either queue (its size, asked with GetQueueAttributes):
        # a report's send is on the hand-off's path.
        assert first_send == {("sqs", "SendMessage"): 2}, first_send
        assert sqs.receive_message(QueueUrl=url).get("Messages"), "the task message did not arrive"
        assert sqs.receive_message(QueueUrl=maintenance).get("Messages"), "the report did not arrive"
    finally:
        proxy.stop()
        server.stop()


def test_a_warm_up_that_cannot_reach_aws_only_logs():
    process = run_warm_up({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_MAX_ATTEMPTS": "1"})
    out, err = process.communicate("\n", timeout=90)
    assert out.splitlines()[0] == "warm"
    assert "could not warm up this pool process" in err
