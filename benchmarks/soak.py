"""Fault-injection soak: many rollouts in two groups of a real local cluster, each with a random fault.

The cluster has two maintenance groups of app instances: ``local-api`` (layer ``api``, tracking the
sample app's ``main``) and ``local-web`` (layer ``web``, tracking the branch ``web``). Each group has
its own line of rollouts, and the two lines run at the same time, so one group's faults happen while
the other is rolling out. Which group a rollout and its fault go to is chosen at random (seeded).

Every AWS request of the instances goes through a proxy that can fail a share of the
DynamoDB and S3 requests with a 500 (transient errors botocore must absorb). Faults,
one per rollout, chosen at random (seeded):

- ``kill-updating``: SIGKILL the worker that is updating, restart it two seconds later;
- ``kill-conductor``: SIGKILL an instance's worker process mid-flight (its conductor runs in it), restart;
- ``restart-worker``: stop an instance's worker cleanly during the rollout and start it again;
- ``duplicate-delivery``: the push webhook delivered twice with the same delivery id;
- ``double-push``: two commits pushed and announced 100 ms apart;
- ``drop-message``: one maintenance message deleted from the group's FIFO queue by the soak;
- ``corrupt-artifact``: a built release's artifact overwritten in S3, then rolled back to on instances
  that no longer hold it (an instance that does installs the copy it verified when it downloaded it);
- ``aws-errors``: 3% of DynamoDB and S3 requests fail with a 500 during the rollout (the proxy is shared,
  so the other group's rollout of the moment sees them too);
- ``none``.

The victims of a fault are always members of the rollout's group. Afterwards the recorded state is
checked per group: never more tickets of the group updating at once (across rollouts) than one batch of
one rollout (its ``max_parallel``: one at a time by default; ``benchmarks.overlap``), tickets started
in number order, one ticket per instance and rollout, every instance on a release of its group whose
artifact it verified. A rollout still running after its time is aborted by the soak and counted as
"needed an operator".

``--faults SPEC`` runs the whole soak on a local AWS that misbehaves as AWS does, in every rollout
(``skynet_tasks.local.faults``: ``conflicts,throttle,duplicates,stale-reads``); the report gives the
count of each fault the server served (from its ``/skynet-faults/``), and two more checks:

- **lost reports**: every update an instance's worker reported (its log line ``rollout R: ticket N on
  I succeeded|failed``, written once the ``UpdateReported`` is sent) is in the ledger: ticket N of R is
  I's and ``done`` if it succeeded, ``failed`` if not (a report lost on the way leaves the ticket
  ``updating`` or failed at its deadline). Rollouts the soak aborted are not checked, and a report not
  in the ledger in a ``drop-message`` rollout (the soak deleted a maintenance message on purpose) is
  counted apart.
- **halted by an absorbed fault**: a halt of a rollout whose own fault is not one that may halt it by
  design (``kill-updating`` and ``drop-message`` may leave a ticket to its deadline, ``corrupt-artifact``
  fails its install) and whose last ticket was not set to fail its health check.

    .venv/bin/python -m benchmarks.soak --rollouts 50 --seed 1 [--faults SPEC] [--out results/soak.json]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kombu.pools

from benchmarks.clusters import CountedCluster
from benchmarks.countingproxy import CountingProxy
from benchmarks.overlap import Span, batch_of, policy_of, updating_at_once
from benchmarks.report import write_json
from skynet_tasks import names
from skynet_tasks.artifacts import Manifest
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.cluster import LOCAL_ENV
from skynet_tasks.local.cluster_info import InstanceInfo
from skynet_tasks.local.processes import stop_process_group
from skynet_tasks.local.sample_repo import branch_tip, commit_files
from skynet_tasks.resources import resolve
from skynet_tasks.webhook.local import push_payload, send_webhook

FAULTS = ("none", "kill-updating", "kill-conductor", "restart-worker", "duplicate-delivery", "double-push",
          "drop-message", "corrupt-artifact", "aws-errors")
# The second app layer: its own maintenance group, tracking the sample app's branch of the same name.
SECOND_LAYER = "web"
# The soak's release: a 30 s update timeout, since under CI's load (another xdist worker beside it) a
# canary's update once took longer than 15 s, and its deadline failed it while it succeeded.
SPEC = """build:
  - [python3, build.py]
service:
  command: [python3, app.py]
health:
  http: /health
  command: [python3, check.py]
  timeout: 10
update_timeout: 30
"""

FINISHED = ("completed", "halted", "aborted", "superseded", "build_failed")
# The soak's own faults that may halt a rollout by design; a halt after any other is a fault not absorbed.
MAY_HALT = ("kill-updating", "drop-message", "corrupt-artifact")
ALL_AWS_FAULTS = "conflicts,throttle,duplicates,stale-reads"
# What tasks/update.py logs once its UpdateReported is sent.
REPORTED = re.compile(r"rollout (\S+): ticket (\d+) on (\S+) (succeeded|failed)")


@dataclass
class SoakReport:
    rollouts: int = 0
    per_group: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    faults_per_group: dict[str, collections.Counter[str]] = field(default_factory=dict)
    states: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    halts: list[str] = field(default_factory=list)  # "group fault: the conductor's reason", to tell why
    halted_by_absorbed: list[str] = field(default_factory=list)  # halts no fault of the soak explains
    aws_faults: dict[str, int] = field(default_factory=dict)  # what the local AWS served (--faults)
    reports: int = 0  # updates reported by the workers (their log lines)
    lost_reports: list[str] = field(default_factory=list)  # reported, not (or not so) in the ledger
    dropped_reports: list[str] = field(default_factory=list)  # the same, in a rollout whose message the soak deleted
    fault_of: dict[str, str] = field(default_factory=dict)  # rollout id -> the soak's fault in it
    # Completed rollouts in which a member of the group has no done ticket (it looked dead meanwhile, or
    # its take_ticket never came): not a violation (the design lets a stale member go), but worth knowing.
    completed_without: list[str] = field(default_factory=list)
    needed_operator: int = 0
    seconds: float = 0.0
    # The two groups' lines record into one report at the same time.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def finished(self, rollout_id: str, group: str, fault: str, state: str, reason: str | None,
                 may_fail: bool = False) -> None:
        with self.lock:
            self.fault_of[rollout_id] = fault
            self.rollouts += 1
            self.per_group[group] += 1
            self.states[state] += 1
            if state == "halted":
                self.halts.append(f"{group} {fault}: {reason}")
                if fault not in MAY_HALT and not may_fail:
                    self.halted_by_absorbed.append(f"{group} {fault}: {reason}")

    def fault(self, group: str, kind: str) -> None:
        with self.lock:
            self.faults[kind] += 1
            self.faults_per_group.setdefault(group, collections.Counter())[kind] += 1

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def operator_needed(self) -> None:
        with self.lock:
            self.needed_operator += 1

    def to_json(self) -> dict[str, Any]:
        return {"rollouts": self.rollouts, "rollouts_per_group": dict(self.per_group),
                "faults": dict(self.faults),
                "faults_per_group": {group: dict(kinds) for group, kinds in self.faults_per_group.items()},
                "states": dict(self.states), "halts": self.halts, "invariant_violations": self.violations,
                "halted_by_absorbed_fault": self.halted_by_absorbed, "aws_faults": self.aws_faults,
                "reports": self.reports, "lost_reports": self.lost_reports, "dropped_reports": self.dropped_reports,
                "completed_without_a_member": self.completed_without,
                "needed_operator": self.needed_operator, "seconds": round(self.seconds, 1)}

    def table(self) -> str:
        lines = [f"{'rollouts':<40}{self.rollouts}"]
        lines += [f"{'rollouts in ' + group:<40}{count}" for group, count in sorted(self.per_group.items())]
        lines += [f"{'fault ' + kind:<40}{count}" for kind, count in sorted(self.faults.items())]
        lines += [f"{'state ' + state:<40}{count}" for state, count in sorted(self.states.items())]
        lines += [f"{'aws fault ' + kind:<40}{count}" for kind, count in sorted(self.aws_faults.items())]
        lines += [f"{'invariant violations':<40}{len(self.violations)}",
                  f"{'updates reported':<40}{self.reports}", f"{'lost reports':<40}{len(self.lost_reports)}",
                  f"{'reports deleted by drop-message':<40}{len(self.dropped_reports)}",
                  f"{'halted by an absorbed fault':<40}{len(self.halted_by_absorbed)}",
                  f"{'completed without a member':<40}{len(self.completed_without)}",
                  f"{'needed an operator':<40}{self.needed_operator}", f"{'seconds':<40}{self.seconds:.0f}"]
        return "\n".join(lines)


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


@dataclass
class Lane:
    """One maintenance group the soak drives: its layer, the branch it tracks, a clone to push from."""

    layer: str
    branch: str
    size: int
    random: random.Random
    work: Path
    head: str = ""

    @property
    def group(self) -> str:
        return names.default_group(LOCAL_ENV, self.layer)


class Soak:
    def __init__(self, directory: Path, seed: int, api: int = 3, second: int = 3, faults: str = "",
                 build_nudge_after: float | None = None) -> None:
        self.random = random.Random(seed)
        self.proxy = FaultyProxy(seed)
        self.cluster = CountedCluster(directory, self.proxy, heartbeat_interval=1.0, heartbeat_max_age=10.0,
                                      faults=faults)
        if build_nudge_after is not None:  # the workers' SKYNET_BUILD_NUDGE_AFTER (45 s by default)
            self.cluster.extra_env["SKYNET_BUILD_NUDGE_AFTER"] = f"{build_nudge_after:g}"
        # Each lane draws its victims from its own generator: the lanes run in threads, and a shared
        # generator would hand out numbers in whatever order the threads happen to ask.
        self.lanes = [Lane("api", "main", api, random.Random(f"{seed}-api"), directory / "work-api"),
                      Lane(SECOND_LAYER, SECOND_LAYER, second, random.Random(f"{seed}-{SECOND_LAYER}"),
                           directory / f"work-{SECOND_LAYER}")]
        # start_instance rewrites the cluster's record of its instances; one restart at a time.
        self.restarting = threading.Lock()
        self.report = SoakReport()

    # ---- cluster --------------------------------------------------------------------------------------------
    def up(self) -> None:
        api, second = self.lanes
        info = self.cluster.up(api=api.size, extra_layers={second.layer: second.size})
        os.environ.update(info.environment)
        kombu.pools.reset()
        self.ledger = Ledger(self.cluster.aws().dynamodb, names.state_table(LOCAL_ENV))
        self.secret = Path(str(info.webhook_secret_file)).read_bytes().strip()
        for lane in self.lanes:
            lane.head = branch_tip(info.app_repo, lane.branch)

    def down(self) -> None:
        self.cluster.down()
        self.proxy.stop()

    def members(self, lane: Lane) -> list[InstanceInfo]:
        return [i for i in self.cluster.require_info().instances if i.group == lane.group]

    def restart(self, instance_id: str) -> None:
        with self.restarting:
            found = next(i for i in self.cluster.require_info().instances if i.id == instance_id)
            self.cluster.start_instance(instance_id, found.layer)

    # ---- pushes ---------------------------------------------------------------------------------------------
    def commit(self, lane: Lane, fail_on: str | None = None) -> str:
        """Push a new release on the lane's branch (failing where ``fail_on`` says); return the sha before."""
        files = {"VERSION": f"soak {lane.layer} {secrets.token_hex(4)}\n", "skynet.yml": SPEC,
                 "fail-on.txt": f"{fail_on}\n" if fail_on else None}
        sha = commit_files(self.cluster.require_info().app_repo, lane.work, files, f"soak {lane.layer}", lane.branch)
        before, lane.head = lane.head, sha
        return before

    def announce(self, lane: Lane, before: str, delivery: str | None = None) -> str | None:
        info = self.cluster.require_info()
        status, answer = send_webhook(str(info.webhook_url), self.secret, "push",
                                      push_payload("sample-app", lane.branch, before, lane.head), delivery=delivery)
        if status != 202:
            self.report.violation(f"{lane.group}: webhook answered {status}: {answer}")
            return None
        builds = answer.get("builds") or []
        if any(build["group"] != lane.group for build in builds):
            self.report.violation(f"a push to {lane.branch} started builds for {[b['group'] for b in builds]}")
        return str(builds[0]["rollout_id"]) if builds else None

    def settle(self, lane: Lane, fault: str, rollout_id: str, may_fail: bool = False) -> str:
        """Wait for the rollout to finish and record how it ended (``may_fail``: a failing health check was
        planned); returns its state."""
        state, reason = self.wait(rollout_id)
        self.report.finished(rollout_id, lane.group, fault, state, reason, may_fail)
        return state

    # How long a rollout may take before the soak calls it stuck and an operator steps in. Under CI's
    # load (the other xdist worker busy beside it) with every AWS fault on, one rollout of 10 once went
    # past 90 s and was counted stuck, in a run where the same soak alone passes in 93 s; 150 s is still
    # far less than a ticket's hold after a passed deadline (``conductor.attention.UPDATE_HARD_LIMIT``).
    def wait(self, rollout_id: str, timeout: float = 150) -> tuple[str, str | None]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.ledger.rollout_item(rollout_id)
            if item and item.get("state") in FINISHED:
                return str(item["state"]), item.get("reason")
            time.sleep(0.3)
        # Stuck: the operator steps in.
        self.report.operator_needed()
        from skynet_tasks.app import create_app
        from skynet_tasks.messages import Messenger
        from skynet_tasks.operator import OperatorError, rollout_action

        try:
            rollout_action(self.ledger, Messenger(create_app(), LOCAL_ENV), rollout_id, "abort", "soak")
        except OperatorError:
            pass
        return "stuck", None

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
    def run_one(self, lane: Lane, fault: str) -> None:
        self.report.fault(lane.group, fault)
        if fault == "corrupt-artifact":
            self.corrupt_and_roll_back(lane)
            return
        # Now and then the last ticket fails its health check.
        fail_on = f"ticket:{lane.size}" if lane.random.random() < 0.15 else None
        before = self.commit(lane, fail_on)
        if fault == "aws-errors":
            self.proxy.errors_on()
        try:
            rollout_id = self.announce(lane, before)
            if fault == "duplicate-delivery":
                delivery = secrets.token_hex(8)
                rollout_id = self.announce(lane, before, delivery)
                again = self.announce(lane, before, delivery)
                if again not in (None, rollout_id):
                    self.report.violation(f"{lane.group}: a redelivery started another rollout {again}")
            elif fault == "double-push":
                time.sleep(0.1)
                first = rollout_id
                rollout_id = self.announce(lane, self.commit(lane))
                if first:
                    self.settle(lane, fault, first, may_fail=fail_on is not None)
            if rollout_id is None:
                return
            threading.Thread(target=self.inject, args=(lane, fault, rollout_id), daemon=True).start()
            self.settle(lane, fault, rollout_id, may_fail=fail_on is not None)
        finally:
            if fault == "aws-errors":
                self.proxy.errors_off()
        self.heal(lane)

    def inject(self, lane: Lane, fault: str, rollout_id: str) -> None:
        if fault == "kill-updating":
            ticket = self.updating_ticket(rollout_id)
            if ticket:
                self.cluster.stop_instance(ticket["instance"], sig=signal.SIGKILL)
                time.sleep(2)
                self.restart(ticket["instance"])
        elif fault == "kill-conductor":
            worker = lane.random.choice(self.members(lane))
            os.kill(worker.pid, signal.SIGKILL)  # the worker's main process, where the conductor runs
            time.sleep(2)
            stop_process_group(worker.pid, grace=10)
            self.restart(worker.id)
        elif fault == "restart-worker":
            victim = lane.random.choice(self.members(lane)).id
            self.cluster.stop_instance(victim)
            self.restart(victim)
        elif fault == "drop-message":
            sqs = self.cluster.aws().sqs
            url = sqs.get_queue_url(QueueName=names.maintenance_queue(LOCAL_ENV, lane.group))["QueueUrl"]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
                if got:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
                    return

    def corrupt_and_roll_back(self, lane: Lane) -> None:
        group = self.ledger.group_info(lane.group)
        previous = group.get("previous_release")
        release = self.ledger.release(lane.group, str(previous)) if previous else None
        if release is None or not release.artifact_key:
            return
        s3 = self.cluster.aws().s3
        bucket = resolve(self.cluster.aws(), LOCAL_ENV).repo_bucket
        s3.put_object(Bucket=bucket, Key=release.artifact_key, Body=b"corrupted by the soak")
        # An instance that still holds the release verified it when it downloaded it and installs its own
        # copy; the instances here must download it again, as if they had pruned it (or were new).
        for instance in self.members(lane):
            root = Path(instance.root)
            current = os.readlink(root / "current").rsplit("/", 1)[-1] if (root / "current").is_symlink() else None
            if current != previous:
                shutil.rmtree(root / "releases" / str(previous), ignore_errors=True)
        from skynet_tasks.app import create_app
        from skynet_tasks.messages import Messenger
        from skynet_tasks.operator import rollback

        started = rollback(self.ledger, Messenger(create_app(), LOCAL_ENV), lane.group, "soak")
        state = self.settle(lane, "corrupt-artifact", started.rollout_id)
        if state == "completed":
            self.report.violation(f"{lane.group}: rollout {started.rollout_id} of a corrupted artifact completed")

    def heal(self, lane: Lane) -> None:
        """Every instance of the group the soak killed is running again before the group's next rollout."""
        members = self.members(lane)
        for instance in members:
            try:
                os.kill(instance.pid, 0)
            except ProcessLookupError:
                self.restart(instance.id)
        self.cluster.wait_registered([i.id for i in members], 60)

    # ---- invariants -----------------------------------------------------------------------------------------
    def check(self) -> None:
        for lane in self.lanes:
            self.check_group(lane)
        self.check_reports()
        if self.cluster.faults and self.cluster.moto is not None:
            self.report.aws_faults = self.cluster.moto.fault_counts()

    def check_reports(self) -> None:
        """Every update a worker reported is in the ledger as reported (see the module's "lost reports")."""
        reported: set[tuple[str, int, str, bool]] = set()
        for log in self.cluster.dir.glob("instances/*/logs/worker.log"):
            for found in REPORTED.finditer(log.read_text(errors="replace")):
                reported.add((found[1], int(found[2]), found[3], found[4] == "succeeded"))
        self.report.reports = len(reported)
        views: dict[str, dict[str, Any]] = {}
        for rollout_id, number, instance, ok in sorted(reported):
            view = views.setdefault(rollout_id, self.ledger.rollout_view(rollout_id) or {})
            if view.get("state") == "aborted":
                continue  # the soak stepped in: counted as needing an operator
            ticket = next((t for t in view.get("tickets", []) if t["number"] == number), None)
            wanted = "done" if ok else "failed"
            if ticket is None or ticket["instance"] != instance or ticket["state"] != wanted:
                got = f"{ticket['instance']} {ticket['state']}" if ticket else "no such ticket"
                fault = self.report.fault_of.get(rollout_id, "?")
                lost = (f"{rollout_id}#{number} ({fault}) on {instance} reported {'ok' if ok else 'failed'}, "
                        f"ledger: {got}")
                # drop-message deletes a maintenance message on purpose: a report, at times
                (self.report.dropped_reports if fault == "drop-message" else self.report.lost_reports).append(lost)

    def check_group(self, lane: Lane) -> None:
        group = lane.group
        spans: list[Span] = []
        for rollout_id in self.ledger.recent_rollouts(group, 500):
            view = self.ledger.rollout_view(rollout_id) or {}
            mine = sorted(view.get("tickets", []), key=lambda t: t["number"])
            holders = [t["instance"] for t in mine]
            if len(holders) != len(set(holders)):
                self.report.violation(f"{group} {rollout_id}: an instance holds two tickets")
            strangers = sorted(set(holders) - {i.id for i in self.members(lane)})
            if strangers:
                self.report.violation(f"{group} {rollout_id}: tickets held by non-members {strangers}")
            if view.get("state") == "completed":
                missing = sorted({i.id for i in self.members(lane)}
                                 - {t["instance"] for t in mine if t["state"] == "done"})
                if missing:
                    self.report.completed_without.append(f"{group} {rollout_id}: {missing}")
            started = [t for t in mine if t.get("started_at")]
            for earlier, later in zip(started, started[1:], strict=False):
                if later["started_at"] < earlier["started_at"] and later.get("attempts", 1) == 1:
                    self.report.violation(f"{group} {rollout_id}: ticket {later['number']} started before "
                                          f"ticket {earlier['number']}")
            policy = policy_of(rollout_id, view)
            spans += [Span(t["started_at"], t.get("finished_at") or float("inf"), rollout_id, t["number"],
                           batch_of(policy, t["number"])) for t in started]
        for violation in updating_at_once(group, spans):
            faults = sorted({self.report.fault_of.get(s.rollout_id, "the first release")
                             for s in spans if s.rollout_id in violation})
            self.report.violation(f"{violation} [fault: {', '.join(faults)}]")
        for instance in self.members(lane):
            current = Path(instance.root) / "current"
            if not current.exists():
                continue
            marker = current / ".skynet-release"
            sha = os.readlink(current).rsplit("/", 1)[-1]
            release = self.ledger.release(group, sha)
            if not marker.exists() or release is None or Manifest.from_json(marker.read_text()).sha256 != \
                    release.sha256:
                self.report.violation(f"{group}: {instance.id} runs {sha[:12]} without a verified artifact")


def plan(rollouts: int, lanes: int, rng: random.Random, every_lane: bool = True) -> list[tuple[int, str]]:
    """(lane, fault) for each rollout: first every fault once in every lane (``every_lane``; otherwise once,
    the lanes taking turns), then lane and fault at random.

    In the first round each lane takes the faults in the order of ``FAULTS`` (``corrupt-artifact``
    needs a previous release to roll back to, so it does not come first).
    """
    first = ([(lane, fault) for fault in FAULTS for lane in range(lanes)] if every_lane
             else [(index % lanes, fault) for index, fault in enumerate(FAULTS)])[:rollouts]
    return first + [(rng.randrange(lanes), rng.choice(FAULTS)) for _ in range(rollouts - len(first))]


def run_soak(directory: Path, rollouts: int, seed: int, say: Any = print, faults: str = "",
             every_lane: bool = True, build_nudge_after: float | None = None) -> SoakReport:
    """Run ``rollouts`` rollouts with a fault each (seeded; see ``plan``), on a local AWS with ``faults`` on.

    ``build_nudge_after`` sets the workers' ``SKYNET_BUILD_NUDGE_AFTER`` (their default when None).
    """
    soak = Soak(directory, seed, faults=faults, build_nudge_after=build_nudge_after)
    planned = plan(rollouts, len(soak.lanes), soak.random, every_lane)
    started = time.monotonic()
    done = iter(range(1, rollouts + 1))
    errors: list[BaseException] = []

    def drive(lane: Lane, faults: list[str]) -> None:
        try:
            first = soak.announce(lane, "0" * 40)  # the sample app's first release
            if first:
                soak.wait(first)  # not counted: no fault
            for fault in faults:
                soak.run_one(lane, fault)
                say(f"rollout {next(done)}/{rollouts}: {lane.group} {fault}")
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    try:
        soak.up()
        lines = [threading.Thread(target=drive, args=(lane, [f for n, f in planned if n == index]),
                                  name=f"soak-{lane.group}")
                 for index, lane in enumerate(soak.lanes)]
        for line in lines:
            line.start()
        for line in lines:
            line.join()
        if errors:
            raise errors[0]
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
    parser.add_argument("--faults", default="", metavar="SPEC",
                        help=f"the local AWS's fault modes for the whole run, e.g. {ALL_AWS_FAULTS}")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = run_soak(Path(tempfile.mkdtemp(prefix="skynet-soak-")), args.rollouts, args.seed, faults=args.faults)
    print(report.table())
    for violation in report.violations:
        print("VIOLATION", violation)
    for lost in report.lost_reports:
        print("LOST REPORT", lost)
    for halt in report.halted_by_absorbed:
        print("HALTED BY AN ABSORBED FAULT", halt)
    write_json(report.to_json(), args.out)


if __name__ == "__main__":
    main()
