"""The soak's faults: a proxy that fails AWS requests, and one rollout with its fault done to its group.

Functions of the running ``Soak`` (``benchmarks.soak``, whose ``plan`` picks each rollout's group and
fault, and whose docstring describes the faults); they stay apart from its core so that it reads as the
cluster, the pushes and the waiting, and this module as what goes wrong on purpose.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.countingproxy import CountingProxy
from skynet_tasks import names
from skynet_tasks.local.cluster import LOCAL_ENV
from skynet_tasks.local.processes import stop_process_group
from skynet_tasks.resources import resolve

if TYPE_CHECKING:
    from benchmarks.soak import Lane, Soak


class FaultyProxy(CountingProxy):
    """The counting proxy, failing a share of DynamoDB and S3 requests with a 500 while any rollout asks for it."""

    def __init__(self, seed: int) -> None:
        self.fail_ratio = 0.0
        self.failing = 0  # rollouts that asked for errors and have not finished (one per group at most)
        self.failed = 0
        self.random = random.Random(seed)
        super().__init__()

    def errors_on(self) -> None:
        with self.lock:
            self.failing += 1
            self.fail_ratio = 0.03

    def errors_off(self) -> None:
        with self.lock:
            self.failing -= 1
            self.fail_ratio = 0.03 if self.failing else 0.0

    def should_fail(self, service: str) -> bool:
        if service in ("dynamodb", "s3") and self.fail_ratio and self.random.random() < self.fail_ratio:
            self.failed += 1
            return True
        return False


def run_one(soak: Soak, lane: Lane, fault: str) -> None:
    """One rollout of the lane's group with one fault (``FAULTS``), and its group healed after it."""
    soak.report.fault(lane.group, fault)
    if fault == "corrupt-artifact":
        corrupt_and_roll_back(soak, lane)
        return
    # Now and then the last ticket fails its health check.
    fail_on = f"ticket:{lane.size}" if lane.random.random() < 0.15 else None
    before = soak.commit(lane, fail_on)
    if fault == "aws-errors":
        soak.proxy.errors_on()
    try:
        rollout_id = soak.announce(lane, before)
        if fault == "duplicate-delivery":
            delivery = secrets.token_hex(8)
            rollout_id = soak.announce(lane, before, delivery)
            again = soak.announce(lane, before, delivery)
            if again not in (None, rollout_id):
                soak.report.violation(f"{lane.group}: a redelivery started another rollout {again}")
        elif fault == "double-push":
            time.sleep(0.1)
            first = rollout_id
            rollout_id = soak.announce(lane, soak.commit(lane))
            if first:
                soak.settle(lane, fault, first, may_fail=fail_on is not None)
        if rollout_id is None:
            return
        threading.Thread(target=inject, args=(soak, lane, fault, rollout_id), daemon=True).start()
        soak.settle(lane, fault, rollout_id, may_fail=fail_on is not None)
    finally:
        if fault == "aws-errors":
            soak.proxy.errors_off()
    heal(soak, lane)


def inject(soak: Soak, lane: Lane, fault: str, rollout_id: str) -> None:
    if fault == "kill-updating":
        ticket = soak.updating_ticket(rollout_id)
        if ticket:
            soak.cluster.stop_instance(ticket["instance"], sig=signal.SIGKILL)
            time.sleep(2)
            soak.restart(ticket["instance"])
    elif fault == "kill-conductor":
        worker = lane.random.choice(soak.members(lane))
        os.kill(worker.pid, signal.SIGKILL)  # the worker's main process, where the conductor runs
        time.sleep(2)
        stop_process_group(worker.pid, grace=10)
        soak.restart(worker.id)
    elif fault == "restart-worker":
        victim = lane.random.choice(soak.members(lane)).id
        soak.cluster.stop_instance(victim)
        soak.restart(victim)
    elif fault == "drop-message":
        sqs = soak.cluster.aws().sqs
        url = sqs.get_queue_url(QueueName=names.maintenance_queue(LOCAL_ENV, lane.group))["QueueUrl"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
            if got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
                return


def corrupt_and_roll_back(soak: Soak, lane: Lane) -> None:
    group = soak.ledger.group_info(lane.group)
    previous = group.get("previous_release")
    release = soak.ledger.release(lane.group, str(previous)) if previous else None
    if release is None or not release.artifact_key:
        return
    s3 = soak.cluster.aws().s3
    bucket = resolve(soak.cluster.aws(), LOCAL_ENV).repo_bucket
    s3.put_object(Bucket=bucket, Key=release.artifact_key, Body=b"corrupted by the soak")
    # An instance that still holds the release verified it when it downloaded it and installs its own
    # copy; the instances here must download it again, as if they had pruned it (or were new).
    for instance in soak.members(lane):
        root = Path(instance.root)
        current = os.readlink(root / "current").rsplit("/", 1)[-1] if (root / "current").is_symlink() else None
        if current != previous:
            shutil.rmtree(root / "releases" / str(previous), ignore_errors=True)
    from skynet_tasks.app import create_app
    from skynet_tasks.messages import Messenger
    from skynet_tasks.operator import rollback

    started = rollback(soak.ledger, Messenger(create_app(), LOCAL_ENV), lane.group, "soak")
    state = soak.settle(lane, "corrupt-artifact", started.rollout_id)
    if state == "completed":
        soak.report.violation(f"{lane.group}: rollout {started.rollout_id} of a corrupted artifact completed")


def heal(soak: Soak, lane: Lane) -> None:
    """Every instance of the group the soak killed is running again before the group's next rollout."""
    members = soak.members(lane)
    for instance in members:
        try:
            os.kill(instance.pid, 0)
        except ProcessLookupError:
            soak.restart(instance.id)
    soak.cluster.wait_registered([i.id for i in members], 60)
