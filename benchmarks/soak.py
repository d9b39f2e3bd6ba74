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
  I succeeded|failed``, written once the report is decided or sent) is in the ledger: ticket N of R is
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
import os
import random
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kombu.pools

from benchmarks import soak_checks, soak_faults
from benchmarks.clusters import CountedCluster
from benchmarks.report import write_json
from benchmarks.soak_faults import FaultyProxy
from benchmarks.soak_report import FINISHED, SoakReport
from skynet_tasks import names
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.cluster import LOCAL_ENV
from skynet_tasks.local.cluster_info import InstanceInfo
from skynet_tasks.local.sample_repo import branch_tip, commit_files
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

ALL_AWS_FAULTS = "conflicts,throttle,duplicates,stale-reads"


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
                soak_faults.run_one(soak, lane, fault)
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
        soak_checks.check(soak)
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
