"""``skynet logs``: a rollout's build log and its tickets' update logs, once or as they appear."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.aws import Aws
from skynet_tasks.cli import exitcodes
from skynet_tasks.cli.completion import complete_rollouts
from skynet_tasks.cli.lookup import RolloutReader
from skynet_tasks.cli.options import env_option, env_resources, json_option
from skynet_tasks.cli.watch import POLL_INTERVAL
from skynet_tasks.ledger import Ledger
from skynet_tasks.registry import Registry


def log_entries(summary: dict[str, Any], ticket: int | None) -> list[dict[str, Any]]:
    """The logs a rollout has so far, in order: its build's (unless one ticket is asked for), then each ticket's."""
    entries = [] if ticket else [{"title": "build", "ticket": None, "instance": summary.get("builder"),
                                  "key": summary.get("build_log_key")}]
    entries += [{"title": f"ticket {t['number']} ({t['instance']})", "ticket": t["number"], "instance": t["instance"],
                 "key": t.get("log_key")} for t in summary["tickets"] if ticket is None or t["number"] == ticket]
    return entries


@click.command("logs")
@env_option
@click.argument("rollout_id", shell_complete=complete_rollouts)
@click.option("--ticket", type=click.IntRange(1), default=None, help="Only this ticket's update log.")
@click.option("--follow", "-f", is_flag=True,
              help="Print each log as it is written, until the rollout completes, halts or ends (exit as "
                   "`rollout status --watch`).")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=1800, show_default=True,
              help="With --follow: stop after this many seconds (exit 3).")
@json_option
def logs(env: str, rollout_id: str, ticket: int | None, follow: bool, timeout: float, as_json: bool) -> None:
    """Print a rollout's build log and its tickets' update logs (JSON: one object per log, one a line)."""
    aws = Aws()
    resources = env_resources(aws, env)  # env's own bucket, whatever SKYNET_ENV says
    reader = RolloutReader(Ledger(aws.dynamodb, resources.state_table),
                           Registry(aws.dynamodb, resources.endpoints_table), env)
    store = ArtifactStore(aws.s3, resources.repo_bucket)
    summary = reader.require(rollout_id)
    if ticket is not None and not any(t["number"] == ticket for t in summary["tickets"]) and not follow:
        raise exitcodes.InputError(f"rollout {rollout_id} has no ticket {ticket}")
    printed: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        for entry in log_entries(summary, ticket):
            if entry["title"] in printed or (follow and not entry["key"]):
                continue  # following: a log is printed once, when it is written
            printed.add(entry["title"])
            text = store.get_text(entry["key"]) if entry["key"] else None
            if as_json:
                click.echo(json.dumps({"rollout_id": rollout_id, **entry, "text": text}))
            else:
                click.echo(f"==> {entry['title']}: {entry['key'] or 'no log'}")
                if text is not None:
                    click.echo(text, nl=not text.endswith("\n"))
        if not follow:
            return
        progress = reader.progress(summary)
        if progress.over:  # an update stores its log before it reports: every log is in this summary
            exitcodes.exit_with(progress.exit_code)
        if time.monotonic() >= deadline:
            click.echo(f"rollout {rollout_id}: still {progress.state} after {timeout:.0f} s; stopped following",
                       err=True)
            exitcodes.exit_with(exitcodes.TIMEOUT)
        time.sleep(POLL_INTERVAL)
        found = reader.summary(rollout_id)
        if found is None:
            raise exitcodes.Failed(f"rollout {rollout_id} was deleted while followed")
        summary = found
