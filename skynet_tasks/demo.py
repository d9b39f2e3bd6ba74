"""``skynet demo``: the whole story on one machine.

It brings up a local cluster and tells three rollouts, each pushed to the sample
app's repository and deployed through the same path as a webhook push:

1. a good release: built once, canaried, rolled out one instance at a time;
2. a release whose health check fails on ticket 2: the rollout halts, that
   instance is back on the previous release and keeps serving;
3. a fixing release: it supersedes the halted rollout and completes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import kombu.pools

from skynet_tasks import names
from skynet_tasks.deploys import request_build
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.states import RolloutState

SAMPLE_SPEC = Path(__file__).parent / "local" / "sample_app" / "skynet.yml"


@dataclass
class StepResult:
    title: str
    expected: str
    release: str
    rollout_id: str
    state: str | None = None
    tickets: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def behaved(self) -> bool:
        return self.state == self.expected


def _commit(workdir: Path, app_repo: str, files: dict[str, str | None], message: str) -> str:
    if not workdir.exists():
        repo = git.Repo.clone_from(app_repo, workdir, branch="main")
        with repo.config_writer() as config:
            config.set_value("user", "name", "Skynet Demo")
            config.set_value("user", "email", "demo@skynet.invalid")
    repo = git.Repo(workdir)
    for name, content in files.items():
        if content is None:
            if (workdir / name).exists():
                repo.index.remove([name], working_tree=True)
        else:
            (workdir / name).write_text(content)
            repo.index.add([name])
    repo.index.commit(message)
    repo.remotes.origin.push("main:main")
    return repo.head.commit.hexsha


class Demo:
    def __init__(self, directory: Path, say: Callable[[str], None], api: int = 3) -> None:
        self.directory = directory
        self.say = say
        self.api = api
        self.cluster = LocalCluster(directory, heartbeat_interval=2.0, heartbeat_max_age=20.0)

    def up(self) -> None:
        self.say(f"starting a local cluster in {self.directory}: moto's server and {self.api} API instances…")
        info = self.cluster.up(api=self.api)
        # This process sends builds like the webhook does: point it at the cluster's endpoint.
        kombu.pools.reset()
        os.environ.update(info.environment)
        self.say(f"cluster up: AWS endpoint {info.aws_endpoint}, sample app at {info.app_repo}")

    def run_story(self) -> list[StepResult]:
        from skynet_tasks.app import create_app
        from skynet_tasks.messages import Messenger

        info = self.cluster.require_info()
        workdir = self.directory / "work" / "sample-app"
        shutil.rmtree(workdir, ignore_errors=True)
        ledger = Ledger(self.cluster.aws().dynamodb, names.state_table("local"))
        messenger = Messenger(create_app(), "local")
        spec = SAMPLE_SPEC.read_text()
        story: list[tuple[str, str, dict[str, str | None], str]] = [
            ("a good release", "completed", {"VERSION": "release 2: hello\n"}, "Release 2"),
            ("a release whose health check fails on ticket 2", "halted",
             {"VERSION": "release 3: broken\n", "fail-on.txt": "ticket:2\n", "skynet.yml": spec}, "Release 3"),
            ("a fix that supersedes the halted rollout", "completed",
             {"VERSION": "release 4: fixed\n", "fail-on.txt": None}, "Release 4 fixes release 3"),
        ]
        results = []
        for number, (title, expected, files, message) in enumerate(story, start=1):
            sha = _commit(workdir, info.app_repo, files, message)
            self.say(f"\nstep {number}: {title} ({sha[:12]})")
            started_at = time.monotonic()
            started = request_build(ledger, messenger, "local-api", info.app_repo, "main", sha, source="demo")
            step = StepResult(title, expected, sha, started.rollout_id)
            view = self.follow(ledger, started.rollout_id)
            step.seconds = round(time.monotonic() - started_at, 2)
            step.state = view.get("state") if view else None
            step.tickets = [{k: t.get(k) for k in ("number", "instance", "state", "started_at", "finished_at",
                                                   "error")} for t in (view or {}).get("tickets", [])]
            self.say(f"  -> rollout {step.state}" + ("" if step.behaved else f" (expected {expected})"))
            results.append(step)
        return results

    def follow(self, ledger: Ledger, rollout_id: str, timeout: float = 180) -> dict[str, Any] | None:
        """Print the rollout's progress as it happens; return its final view."""
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
        return view

    def down(self) -> None:
        self.cluster.down()


def summary(results: list[StepResult]) -> dict[str, Any]:
    return {"steps": [{"title": r.title, "expected": r.expected, "state": r.state, "release": r.release,
                       "rollout_id": r.rollout_id, "seconds": r.seconds, "tickets": r.tickets}
                      for r in results],
            "behaved": all(r.behaved for r in results)}


def summary_json(results: list[StepResult]) -> str:
    return json.dumps(summary(results), indent=2)
