"""The conductor at scale: tickets of many simulated instances through the real conductor.

The conductor is Skynet's own step (``tasks.maintenance.handle_maintenance``) on the real ledger
and registry, talking to moto's server through a proxy that counts every AWS request.
The instances are simulated: they are registry entries, and their messages are the
conductor events they would send (take a ticket, report an update) handed straight to
the conductor step. What the conductor sends back (a dispatch per ticket, one notify
per member) is counted as one SQS SendMessage each, not sent, as the instance queues
are not there. Per ticket: AWS requests by kind, and the wall time of the step that takes a
report and dispatches the next ticket.

    .venv/bin/python -m benchmarks.conductor_scale --sizes 10,100,1000 [--out results/conductor.json]

A step reads a partial line (the rollout's record, the updating and next waiting tickets,
the ticket its event names), so requests and time per ticket stay flat as the group grows.
The step that takes a member's ticket is timed too: it looks the member up by its holder item.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.countingproxy import CountingProxy
from benchmarks.report import percentile, write_json
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.context import Context
from skynet_tasks.events import to_message
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.registry import Endpoint
from skynet_tasks.resources import resolve
from skynet_tasks.settings import Settings
from skynet_tasks.states import RolloutKind
from skynet_tasks.tasks.maintenance import handle_maintenance

ENV = "scale"


class CountedSends:
    """Stands in for the Messenger: counts what the conductor would send."""

    def __init__(self) -> None:
        self.sent: collections.Counter[str] = collections.Counter()

    def to_instance(self, instance_id: str, task: str, kwargs: dict[str, Any], expires: float | None = None) -> None:
        self.sent[task] += 1

    def maintenance(self, group: str, event: dict[str, Any], dedup: str) -> None:
        self.sent["maintenance"] += 1


def run_size(environment: dict[str, str], proxy: CountingProxy, size: int) -> dict[str, Any]:
    group = f"{ENV}-g{size}"
    aws = aws_for(environment)
    bootstrap_env(aws, resolve(aws, ENV), [group])
    settings = Settings.from_env({**environment, "SKYNET_ENV": ENV, "SKYNET_GROUP": group,
                                  "SKYNET_HEARTBEAT_MAX_AGE": "3600"})
    ctx = Context.create(settings, app=None, aws=aws)  # type: ignore[arg-type]
    sends = CountedSends()
    ctx.messenger = sends  # type: ignore[assignment]
    members = [f"i-{size}-{n:05d}" for n in range(size)]
    now = time.time()
    for member in members:
        ctx.registry.register(ENV, f"l{size}", Endpoint(instance_id=member, group=group, address="10.0.0.1",
                                                       port=8000, release="old", health="healthy", heartbeat=now))
    rollout_id = f"r-scale-{size}"
    ctx.ledger.create_rollout(rollout_id, group, "new", RolloutKind.CODE, {"source": "bench", "requested_at": now})

    def step(event: Any) -> None:
        body, _ = to_message(event)
        handle_maintenance(ctx, group, body)

    step(RolloutReady(Rollout(id=rollout_id, group=group, release="new", canary=members[0], update_timeout=600)))
    step(UpdateReported(rollout_id, 1, members[0], ok=True))  # the canary's success publishes the release
    taking = []
    for member in members[1:]:
        started = time.perf_counter()
        step(TicketTaken(rollout_id, member))  # every member takes its ticket, as notified
        taking.append(time.perf_counter() - started)
    before = proxy.snapshot()
    timings = []
    for number, member in enumerate(members[1:], start=2):
        started = time.perf_counter()
        step(UpdateReported(rollout_id, number, member, ok=True))  # which dispatches the next ticket
        timings.append(time.perf_counter() - started)
    spent = proxy.snapshot() - before
    tickets = max(len(members) - 1, 1)
    view = ctx.ledger.rollout_view(rollout_id) or {}
    return {
        "instances": size,
        "state": view.get("state"),
        "seconds_per_ticket": {"mean": round(statistics.mean(timings), 4),
                               "p95": round(percentile(timings, 0.95), 4)},
        "seconds_per_ticket_taken": round(statistics.mean(taking), 4) if taking else 0,
        "aws_requests_per_ticket": {f"{service} {op}": round(count / tickets, 2)
                                    for (service, op), count in sorted(spent.items())},
        "aws_requests_per_ticket_total": round(sum(spent.values()) / tickets, 2),
        "sqs_sends_per_ticket_counted_not_sent": round(sends.sent["skynet.update"] / tickets, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    moto = MotoServer.start()
    proxy = CountingProxy()
    proxy.upstream = moto.environment()["AWS_ENDPOINT_URL"]
    try:
        environment = {**moto.environment(), "AWS_ENDPOINT_URL": proxy.url}
        results = [run_size(environment, proxy, int(size)) for size in args.sizes.split(",")]
    finally:
        proxy.stop()
        moto.stop()
    print(f"{'instances':>9} {'state':>10} {'s/ticket':>9} {'p95':>7} {'s/take':>7} {'AWS req/ticket':>15}  by kind")
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in r["aws_requests_per_ticket"].items())
        print(f"{r['instances']:>9} {r['state']!s:>10} {r['seconds_per_ticket']['mean']:>9} "
              f"{r['seconds_per_ticket']['p95']:>7} {r['seconds_per_ticket_taken']:>7} "
              f"{r['aws_requests_per_ticket_total']:>15}  {kinds}")
    write_json({"results": results}, args.out)


if __name__ == "__main__":
    main()
