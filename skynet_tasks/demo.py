"""``skynet demo``: the whole story on one machine.

It brings up a local cluster (moto's server, three API instances, one reverse
proxy with a real nginx, the webhook receiver) and tells four rollouts, each a
commit pushed to the sample app's repository and announced by a signed,
GitHub-shaped push webhook, while a client keeps requesting the app through the
proxy:

1. a good release: built once, canaried, rolled out one instance at a time;
2. a release whose health check fails on ticket 2: the rollout halts, that
   instance is back on the previous release and keeps serving;
3. a fixing release: it supersedes the halted rollout and completes;
4. a release whose ``skynet.yml`` says ``rollout: {on_failure: revert}`` and whose health check
   fails on ticket 3: the rollout halts, and its automatic revert takes the two instances that
   moved back to release 4, the canary last.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skynet_tasks import names
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.sample_repo import branch_tip, commit_files
from skynet_tasks.local.stack_cluster import StackCluster
from skynet_tasks.local.traffic import request, traffic_to
from skynet_tasks.settings import export
from skynet_tasks.states import RolloutState
from skynet_tasks.webhook.local import push_payload, send_webhook
from skynet_tasks.webhook.refnames import ZERO_SHA

SAMPLE_SPEC = Path(__file__).parent / "local" / "sample_app" / "skynet.yml"


@dataclass
class StepResult:
    """What one step of the story did: its rollout's end, timings, tickets and the requests it saw."""

    title: str
    expected: str
    release: str
    rollout_id: str
    state: str | None = None
    tickets: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0
    failed_requests: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    served_release: str | None = None  # what the proxy served once the rollout stopped
    # A step expected "reverted": the rollout halted, and its automatic revert (id, end, tickets) to ``previous``.
    previous: str | None = None
    revert: dict[str, Any] | None = None

    @property
    def behaved(self) -> bool:
        """Whether the step ended as expected, failed no request, and (if completed) serves its release
        (if reverted: halted, its revert completed, and the previous release served again)."""
        if self.expected == "reverted":
            reverted = self.state == "halted" and (self.revert or {}).get("state") == "completed"
            return reverted and self.failed_requests == 0 and self.served_release == self.previous
        served_ok = self.served_release == self.release if self.expected == "completed" else True
        return self.state == self.expected and self.failed_requests == 0 and served_ok


class DemoError(Exception):
    """The demo could not go on (the cluster or the receiver misbehaved)."""


class Demo:
    """The story, told on the stack-built cluster (``stack=True``, as AWS runs it) or on the plain one."""

    def __init__(self, directory: Path, say: Callable[[str], None], api: int = 3, stack: bool = True) -> None:
        self.directory = directory
        self.say = say
        self.api = api
        self.stack = stack
        self.cluster: LocalCluster | StackCluster = (
            StackCluster(directory) if stack else LocalCluster(directory, heartbeat_interval=2.0,
                                                                heartbeat_max_age=20.0))

    def up(self) -> None:
        """Bring up the cluster, and point this process at it."""
        if isinstance(self.cluster, StackCluster):
            self.say(f"deploying cloudformation/php-nginx.yaml into moto (IAM enforced) in {self.directory}: "
                     f"{self.api} API instances and a reverse proxy (nginx), each booting from its launch "
                     "template's user data in a namespace of its own, behind a load-balancer stand-in; "
                     "the webhook receiver and the dashboard…")
            info = self.cluster.up(api=self.api, rp=1, services=True)
        else:
            self.say(f"starting a local cluster in {self.directory}: moto's server, {self.api} API instances, "
                     "a reverse proxy (nginx), the webhook receiver and the dashboard…")
            info = self.cluster.up(api=self.api, rp=1)
        export(info.environment)  # this process's AWS calls reach the local cluster's moto
        self.say(f"cluster up: AWS endpoint {info.aws_endpoint}; proxy {info.rp_url}/api/local/; "
                 f"webhook {info.webhook_url}; sample app at {info.app_repo}")
        self.say(f"dashboard: {info.dashboard_url} — watch the rollouts there (token in {info.dashboard_token_file})")

    def run_story(self) -> list[StepResult]:
        """Tell the story's four rollouts, each a pushed commit announced by a signed webhook."""
        info = self.cluster.require_info()
        workdir = self.directory / "work" / "sample-app"
        shutil.rmtree(workdir, ignore_errors=True)
        ledger = Ledger(self.cluster.aws().dynamodb, names.state_table("local"))
        secret = Path(str(info.webhook_secret_file)).read_bytes().strip()
        app = f"{info.rp_url}/api/local/"
        # The releases that fail do so by their health check, which is retried until its timeout: 10 s, not the
        # sample's 15, keeps the story short; a passing check takes about a second.
        spec = SAMPLE_SPEC.read_text().replace("  timeout: 15\n", "  timeout: 10\n")
        # The first release, so that the proxy has something to serve before the story starts.
        first = branch_tip(info.app_repo)
        self.say("deploying the sample app's first release…")
        self.push_and_follow(ledger, secret, ZERO_SHA, first, "First release")
        # The story's rolling updates fail no request only if the proxy already routes to every
        # instance; the last one re-registers just after it reports, so give the proxy that moment.
        self.wait_for_proxy_to_serve(app, first, {i.id for i in info.instances if i.layer == "api"})
        story: list[tuple[str, str, dict[str, str | None], str]] = [
            ("a good release", "completed", {"VERSION": "release 2: hello\n"}, "Release 2"),
            ("a release whose health check fails on ticket 2", "halted",
             {"VERSION": "release 3: broken\n", "fail-on.txt": "ticket:2\n", "skynet.yml": spec}, "Release 3"),
            ("a fix that supersedes the halted rollout", "completed",
             {"VERSION": "release 4: fixed\n", "fail-on.txt": None}, "Release 4 fixes release 3"),
            ("a release that fails on ticket 3, with on_failure: revert", "reverted",
             {"VERSION": "release 5: reverted\n", "fail-on.txt": "ticket:3\n",
              "skynet.yml": spec + "rollout:\n  on_failure: revert\n"}, "Release 5, reverted on failure"),
        ]
        results = []
        before = first
        for number, (title, expected, files, message) in enumerate(story, start=1):
            sha = commit_files(info.app_repo, workdir, files, message)
            self.say(f"\nstep {number}: {title} ({sha[:12]}), announced by a signed push webhook")
            started_at = time.monotonic()
            with traffic_to(app, pause=0.05) as seen:
                rollout_id, view = self.push_and_follow(ledger, secret, before, sha, message)
                revert = self.follow_revert(ledger, view)
            step = StepResult(title, expected, sha, rollout_id, requests=len(seen.outcomes),
                              failed_requests=len(seen.failures()), failure_reasons=dict(seen.reasons()),
                              previous=before, revert=revert)
            step.seconds = round(time.monotonic() - started_at, 2)
            step.state = view.get("state")
            step.tickets = [{k: t.get(k) for k in ("number", "instance", "state", "started_at", "finished_at",
                                                   "error")} for t in view.get("tickets", [])]
            step.served_release = _release(app)
            self.say(f"  -> rollout {step.state}" + ("" if step.behaved else f" (expected {expected})") +
                     f"; {step.requests} requests through the proxy, {step.failed_requests} failed"
                     + (f" ({_reasons(seen.reasons())})" if step.failed_requests else "") + "; "
                     + (f"its revert {revert['rollout_id']} {revert['state']}; " if revert else "") +
                     f"the proxy now serves {str(step.served_release)[:12]}")
            results.append(step)
            before = before if expected == "reverted" else sha
        return results

    def follow_revert(self, ledger: Ledger, view: dict[str, Any]) -> dict[str, Any] | None:
        """Follow the automatic revert a halted rollout's view names, if any; its id, end and tickets."""
        revert_id = view.get("reverted_by")
        if not revert_id:
            return None
        self.say(f"  the rollout's on_failure is revert: {revert_id} takes the instances that moved back")
        ended = self.follow(ledger, str(revert_id))
        return {"rollout_id": revert_id, "state": ended.get("state"), "release": ended.get("release"),
                "tickets": [{k: t.get(k) for k in ("number", "instance", "state", "started_at", "finished_at")}
                            for t in ended.get("tickets", [])]}

    def wait_for_proxy_to_serve(self, app: str, release: str, instances: set[str],
                                timeout: float = 30) -> None:
        """Wait until the proxy serves ``release`` from every one of ``instances``; DemoError if not."""
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, answer = request(app)
            if answer and answer.get("release") == release:
                seen.add(str(answer.get("instance")))
                if seen >= instances:
                    return
            time.sleep(0.05)
        raise DemoError(f"after {timeout:.0f} s the proxy still does not serve {release[:12]} from "
                        f"{', '.join(sorted(instances - seen))}")

    def push_and_follow(self, ledger: Ledger, secret: bytes, before: str, sha: str,
                        message: str) -> tuple[str, dict[str, Any]]:
        """Announce ``sha`` with a signed push webhook and follow its rollout; return its id and view."""
        info = self.cluster.require_info()
        repo_name = Path(info.app_repo).name.removesuffix(".git")
        status, answer = send_webhook(str(info.webhook_url), secret, "push",
                                      push_payload(repo_name, "main", before, sha, message))
        if status != 202 or not answer.get("builds"):
            raise DemoError(f"the webhook receiver answered {status}: {answer}")
        rollout_id = str(answer["builds"][0]["rollout_id"])
        return rollout_id, self.follow(ledger, rollout_id)

    def follow(self, ledger: Ledger, rollout_id: str, timeout: float = 180) -> dict[str, Any]:
        """Print the rollout's progress as it happens; return its final view (DemoError if it did not end)."""
        seen: dict[Any, str] = {}
        deadline = time.monotonic() + timeout
        view = None
        while time.monotonic() < deadline:
            view = ledger.rollout_view(rollout_id)
            if view is not None:
                if seen.get("state") != view["state"]:
                    seen["state"] = view["state"]
                    self.say(f"  rollout {rollout_id}: {view['state']}")
                for ticket in view.get("tickets", []):
                    if seen.get(ticket["number"]) != ticket["state"]:
                        seen[ticket["number"]] = ticket["state"]
                        error = f" ({ticket['error']})" if ticket.get("error") else ""
                        self.say(f"    ticket {ticket['number']} {ticket['instance']}: {ticket['state']}{error}")
                state = RolloutState(view["state"])
                if state.finished or state is RolloutState.HALTED:
                    return view
            time.sleep(0.2)
        last = view["state"] if view else "unrecorded"
        raise DemoError(f"rollout {rollout_id} is still {last} after {timeout:.0f} s"
                        f"{stalled_build(ledger, view)}; see the instances' logs: {self.cluster.worker_logs()}")

    def down(self) -> None:
        """Stop the cluster."""
        self.cluster.down()


def stalled_build(ledger: Ledger, view: dict[str, Any] | None) -> str:
    """What the ledger says of a rollout's build that never ended: who holds its claim, and since when."""
    if not view or view.get("state") != RolloutState.BUILDING:
        return ""
    release = ledger.release(str(view["group"]), str(view["release"]))
    now = time.time()
    nudged = f"; its build was re-sent {now - float(view['nudged_at']):.0f} s ago" if view.get("nudged_at") else ""
    if release is None:
        return f" (no instance has claimed its build{nudged})"
    claim = "live" if release.lease_until > now else f"lapsed {now - release.lease_until:.0f} s ago"
    return (f" (its build is {release.state} by {release.builder}, started {now - release.started_at:.0f} s ago, "
            f"its claim {claim}{nudged})")


def _release(app: str) -> str | None:
    _, answer = request(app)
    return str(answer.get("release")) if answer else None


def _reasons(reasons: Counter[str]) -> str:
    return ", ".join(f"{count}× {reason}" for reason, count in reasons.most_common())


def summary(results: list[StepResult]) -> dict[str, Any]:
    """The story's outcome as JSON data."""
    return {"steps": [{"title": r.title, "expected": r.expected, "state": r.state, "release": r.release,
                       "rollout_id": r.rollout_id, "seconds": r.seconds, "tickets": r.tickets,
                       "requests": {"total": r.requests, "failed": r.failed_requests,
                                    "failure_reasons": r.failure_reasons},
                       "served_release": r.served_release, "behaved": r.behaved,
                       **({"revert": r.revert} if r.revert is not None else {})}
                      for r in results],
            "behaved": all(r.behaved for r in results)}


def summary_json(results: list[StepResult]) -> str:
    """The story's outcome as JSON text."""
    return json.dumps(summary(results), indent=2)
