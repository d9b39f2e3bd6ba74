"""Fault-injection soak: many rollouts on a real local cluster, each with a random fault, then the invariants.

Every AWS request of the instances goes through a proxy that can fail a share of the
DynamoDB and S3 requests with a 500 (transient errors botocore must absorb). Faults,
one per rollout, chosen at random (seeded):

- ``kill-updating``: SIGKILL the worker that is updating, restart it two seconds later;
- ``kill-conductor``: SIGKILL an instance's conductor worker mid-flight (its parent stops too), restart;
- ``restart-worker``: stop an instance's worker cleanly during the rollout and start it again;
- ``duplicate-delivery``: the push webhook delivered twice with the same delivery id;
- ``double-push``: two commits pushed and announced 100 ms apart;
- ``drop-message``: one maintenance message deleted from the FIFO queue by the soak;
- ``corrupt-artifact``: a built release's artifact overwritten in S3, then rolled back to on instances
  that no longer hold it (an instance that does installs the copy it verified when it downloaded it);
- ``aws-errors``: 3% of DynamoDB and S3 requests fail with a 500 during the rollout;
- ``none``.

Afterwards the recorded state is checked: never two tickets of the group updating at once (across
rollouts), tickets started in number order, one ticket per instance and rollout, every instance on
a release whose artifact it verified. A rollout still running after its time is aborted by the soak
and counted as "needed an operator".

    .venv/bin/python -m benchmarks.soak --rollouts 50 --seed 1 [--out results/soak.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import secrets
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import kombu.pools

from benchmarks.clusters import CountedCluster
from benchmarks.countingproxy import CountingProxy
from skynet_tasks import names
from skynet_tasks.artifacts import Manifest
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.cluster import stop_process_group
from skynet_tasks.webhook.local import push_payload, send_webhook

FAULTS = ("none", "kill-updating", "kill-conductor", "restart-worker", "duplicate-delivery", "double-push",
          "drop-message", "corrupt-artifact", "aws-errors")
SPEC = """build:
  - [python3, build.py]
service:
  command: [python3, app.py]
health:
  http: /health
  command: [python3, check.py]
  timeout: 10
update_timeout: 15
"""
FINISHED = ("completed", "halted", "aborted", "superseded", "build_failed")


@dataclass
class SoakReport:
    rollouts: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    states: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    needed_operator: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"rollouts": self.rollouts, "faults": dict(self.faults), "states": dict(self.states),
                "invariant_violations": self.violations, "needed_operator": self.needed_operator,
                "seconds": round(self.seconds, 1)}

    def table(self) -> str:
        lines = [f"{'rollouts':<28}{self.rollouts}"]
        lines += [f"{'fault ' + kind:<28}{count}" for kind, count in sorted(self.faults.items())]
        lines += [f"{'state ' + state:<28}{count}" for state, count in sorted(self.states.items())]
        lines += [f"{'invariant violations':<28}{len(self.violations)}",
                  f"{'needed an operator':<28}{self.needed_operator}", f"{'seconds':<28}{self.seconds:.0f}"]
        return "\n".join(lines)


class FaultyProxy(CountingProxy):
    """The counting proxy, failing a share of DynamoDB and S3 requests with a 500 when asked."""

    def __init__(self, seed: int) -> None:
        self.fail_ratio = 0.0
        self.failed = 0
        self.random = random.Random(seed)
        super().__init__()

    def should_fail(self, service: str) -> bool:
        if service in ("dynamodb", "s3") and self.fail_ratio and self.random.random() < self.fail_ratio:
            self.failed += 1
            return True
        return False


class Soak:
    def __init__(self, directory: Path, seed: int, api: int = 3) -> None:
        self.random = random.Random(seed)
        self.proxy = FaultyProxy(seed)
        self.cluster = CountedCluster(directory, self.proxy, heartbeat_interval=1.0, heartbeat_max_age=10.0)
        self.api = api
        self.work = directory / "work"
        self.report = SoakReport()

    # ---- cluster --------------------------------------------------------------------------------------------
    def up(self) -> None:
        info = self.cluster.up(api=self.api)
        os.environ.update(info.environment)
        kombu.pools.reset()
        self.ledger = Ledger(self.cluster.aws().dynamodb, names.state_table("local"))
        self.secret = Path(str(info.webhook_secret_file)).read_bytes().strip()
        repo = git.Repo.clone_from(info.app_repo, self.work, branch="main")
        with repo.config_writer() as config:
            config.set_value("user", "name", "Soak")
            config.set_value("user", "email", "soak@skynet.invalid")
        self.repo = repo
        self.head = repo.head.commit.hexsha

    def down(self) -> None:
        self.cluster.down()
        self.proxy.stop()

    def instance_ids(self) -> list[str]:
        return [i.id for i in self.cluster.require_info().instances]

    def restart(self, instance_id: str) -> None:
        self.cluster.start_instance(instance_id, "api")

    # ---- pushes ---------------------------------------------------------------------------------------------
    def commit(self, fail_on: str | None = None) -> str:
        (self.work / "VERSION").write_text(f"soak {secrets.token_hex(4)}\n")
        (self.work / "skynet.yml").write_text(SPEC)
        paths = ["VERSION", "skynet.yml"]
        fail_file = self.work / "fail-on.txt"
        if fail_on:
            fail_file.write_text(fail_on + "\n")
            paths.append("fail-on.txt")
        elif fail_file.exists():
            self.repo.index.remove(["fail-on.txt"], working_tree=True)
        self.repo.index.add(paths)
        self.repo.index.commit("soak")
        self.repo.remotes.origin.push("main:main")
        before, self.head = self.head, self.repo.head.commit.hexsha
        return before

    def announce(self, before: str, delivery: str | None = None) -> str | None:
        info = self.cluster.require_info()
        status, answer = send_webhook(str(info.webhook_url), self.secret, "push",
                                      push_payload("sample-app", "main", before, self.head), delivery=delivery)
        if status != 202:
            self.report.violations.append(f"webhook answered {status}: {answer}")
            return None
        builds = answer.get("builds") or []
        return str(builds[0]["rollout_id"]) if builds else None

    def wait(self, rollout_id: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.ledger.rollout_item(rollout_id)
            if item and item.get("state") in FINISHED:
                return str(item["state"])
            time.sleep(0.3)
        # Stuck: the operator steps in.
        self.report.needed_operator += 1
        from skynet_tasks.app import create_app
        from skynet_tasks.messages import Messenger
        from skynet_tasks.operator import OperatorError, rollout_action

        try:
            rollout_action(self.ledger, Messenger(create_app(), "local"), rollout_id, "abort", "soak")
        except OperatorError:
            pass
        return "stuck"

    def updating_ticket(self, rollout_id: str, timeout: float = 30, minimum: int = 2) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.ledger.rollout_view(rollout_id) or {}
            for ticket in view.get("tickets", []):
                if ticket["state"] == "updating" and ticket["number"] >= minimum:
                    return dict(ticket)
            if view.get("state") in FINISHED:
                return None
            time.sleep(0.05)
        return None

    # ---- one rollout with one fault -------------------------------------------------------------------------
    def run_one(self, fault: str) -> None:
        self.report.faults[fault] += 1
        if fault == "corrupt-artifact":
            self.corrupt_and_roll_back()
            return
        fail_on = f"ticket:{self.api}" if self.random.random() < 0.15 else None  # now and then the last ticket fails
        before = self.commit(fail_on)
        if fault == "aws-errors":
            self.proxy.fail_ratio = 0.03
        rollout_id = self.announce(before)
        if fault == "duplicate-delivery":
            delivery = secrets.token_hex(8)
            rollout_id = self.announce(before, delivery)
            again = self.announce(before, delivery)
            if again not in (None, rollout_id):
                self.report.violations.append(f"a redelivery started another rollout {again}")
        elif fault == "double-push":
            time.sleep(0.1)
            first = rollout_id
            rollout_id = self.announce(self.commit())
            if first:
                self.report.states[self.wait(first)] += 1
                self.report.rollouts += 1
        if rollout_id is None:
            return
        threading.Thread(target=self.inject, args=(fault, rollout_id), daemon=True).start()
        state = self.wait(rollout_id)
        self.proxy.fail_ratio = 0.0
        self.report.states[state] += 1
        self.report.rollouts += 1
        self.heal()

    def inject(self, fault: str, rollout_id: str) -> None:
        if fault == "kill-updating":
            ticket = self.updating_ticket(rollout_id)
            if ticket:
                self.cluster.stop_instance(ticket["instance"], sig=signal.SIGKILL)
                time.sleep(2)
                self.restart(ticket["instance"])
        elif fault == "kill-conductor":
            victim = self.random.choice(self.instance_ids())
            worker = next(i for i in self.cluster.require_info().instances if i.id == victim)
            for pid in children(worker.pid):
                if b"conductor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            time.sleep(2)
            stop_process_group(worker.pid, grace=10)
            self.restart(victim)
        elif fault == "restart-worker":
            victim = self.random.choice(self.instance_ids())
            self.cluster.stop_instance(victim)
            self.restart(victim)
        elif fault == "drop-message":
            sqs = self.cluster.aws().sqs
            url = sqs.get_queue_url(QueueName=names.maintenance_queue("local", "local-api"))["QueueUrl"]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
                if got:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
                    return

    def corrupt_and_roll_back(self) -> None:
        group = self.ledger.group_info("local-api")
        previous = group.get("previous_release")
        release = self.ledger.release("local-api", str(previous)) if previous else None
        if release is None or not release.artifact_key:
            return
        s3 = self.cluster.aws().s3
        s3.put_object(Bucket="skynet-local-repo", Key=release.artifact_key, Body=b"corrupted by the soak")
        # An instance that still holds the release verified it when it downloaded it and installs its own
        # copy; the instances here must download it again, as if they had pruned it (or were new).
        for instance in self.cluster.require_info().instances:
            root = Path(instance.root)
            current = os.readlink(root / "current").rsplit("/", 1)[-1] if (root / "current").is_symlink() else None
            if current != previous:
                shutil.rmtree(root / "releases" / str(previous), ignore_errors=True)
        from skynet_tasks.app import create_app
        from skynet_tasks.messages import Messenger
        from skynet_tasks.operator import rollback

        started = rollback(self.ledger, Messenger(create_app(), "local"), "local-api", "soak")
        state = self.wait(started.rollout_id)
        self.report.states[state] += 1
        self.report.rollouts += 1
        if state == "completed":
            self.report.violations.append(f"rollout {started.rollout_id} of a corrupted artifact completed")

    def heal(self) -> None:
        """Every instance the soak killed is running again before the next rollout."""
        info = self.cluster.require_info()
        for instance in info.instances:
            try:
                os.kill(instance.pid, 0)
            except ProcessLookupError:
                self.restart(instance.id)
        self.cluster.wait_registered(self.instance_ids(), 60)

    # ---- invariants -----------------------------------------------------------------------------------------
    def check(self) -> None:
        tickets = []
        for rollout_id in self.ledger.recent_rollouts("local-api", 500):
            view = self.ledger.rollout_view(rollout_id) or {}
            mine = sorted(view.get("tickets", []), key=lambda t: t["number"])
            holders = [t["instance"] for t in mine]
            if len(holders) != len(set(holders)):
                self.report.violations.append(f"{rollout_id}: an instance holds two tickets")
            started = [t for t in mine if t.get("started_at")]
            for earlier, later in zip(started, started[1:], strict=False):
                if later["started_at"] < earlier["started_at"] and later.get("attempts", 1) == 1:
                    self.report.violations.append(f"{rollout_id}: ticket {later['number']} started before "
                                                  f"ticket {earlier['number']}")
            tickets += [(rollout_id, t) for t in started]
        spans = sorted((t["started_at"], t.get("finished_at") or float("inf"), rid, t["number"])
                       for rid, t in tickets)
        busy_until, busy = float("-inf"), ""
        for start, end, rollout_id, number in spans:
            if start < busy_until:
                self.report.violations.append(f"{busy} and {rollout_id}#{number} were updating at once")
            if end > busy_until:
                busy_until, busy = end, f"{rollout_id}#{number}"
        for instance in self.cluster.require_info().instances:
            current = Path(instance.root) / "current"
            if not current.exists():
                continue
            marker = current / ".skynet-release"
            sha = os.readlink(current).rsplit("/", 1)[-1]
            release = self.ledger.release("local-api", sha)
            if not marker.exists() or release is None or Manifest.from_json(marker.read_text()).sha256 != \
                    release.sha256:
                self.report.violations.append(f"{instance.id} runs {sha[:12]} without a verified artifact")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def run_soak(directory: Path, rollouts: int, seed: int, say: Any = print, api: int = 3) -> SoakReport:
    soak = Soak(directory, seed, api=api)
    started = time.monotonic()
    try:
        soak.up()
        first = soak.announce("0" * 40)  # the sample app's first release
        if first:
            soak.wait(first)
        for number in range(rollouts):
            fault = FAULTS[number % len(FAULTS)] if number < len(FAULTS) else soak.random.choice(FAULTS)
            soak.run_one(fault)
            say(f"rollout {number + 1}/{rollouts}: {fault}")
        soak.check()
    finally:
        soak.report.seconds = time.monotonic() - started
        soak.report.faults["aws-errors (requests failed)"] = soak.proxy.failed
        soak.down()
    return soak.report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = run_soak(Path(tempfile.mkdtemp(prefix="skynet-soak-")), args.rollouts, args.seed)
    print(report.table())
    for violation in report.violations:
        print("VIOLATION", violation)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report.to_json(), indent=2))


if __name__ == "__main__":
    main()
