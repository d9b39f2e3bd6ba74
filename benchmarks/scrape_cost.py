"""What watching an env costs: AWS requests per /metrics scrape and per open dashboard tab-minute, by fleet size.

Seeds an env of N instances straight into moto (registry entries, each instance's queue and its
dead-letter queue, two groups with a finished rollout each: no real instances), serves the
dashboard in this process with its AWS clients behind the counting proxy, and counts:

- a cold scrape (first after start) and ``--scrapes`` more within 30 s, as one Prometheus (or
  several, or a scrape and open tabs) would: the target is flat in the number of scrapes;
- tabs left open on a page for ``--seconds`` (an idle env: nothing changes), each behaving as
  dashboard.js does (long poll of ``/api/changes``, the page re-fetched on change and every 30 s),
  per tab-minute, for 1 and ``--tabs`` tabs at once.

``--legacy`` behaves as the dashboard did before (each tab re-fetching its page every 2 s), and
runs against a tree without ``/api/changes`` too:
``PYTHONPATH=/path/to/old/tree python benchmarks/scrape_cost.py --legacy``.

    .venv/bin/python -m benchmarks.scrape_cost --sizes 10,100 [--seconds 60] [--out results/scrape.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file, against another tree's skynet_tasks (``--legacy``)
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: the tree measured

import kombu.pools
from werkzeug.serving import make_server

from benchmarks.countingproxy import CountingProxy
from benchmarks.report import write_json
from skynet_tasks import names
from skynet_tasks.app import create_app as create_celery
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.conductor import Decision, Group, Rollout, Ticket
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.queues import Queues, instance_queue
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.states import RolloutKind, RolloutState, TicketState

ENV = "local"
GROUPS = ("local-api", "local-rp")
AGE_MS = 30.0  # seconds: dashboard.js re-fetches its page at least this often
LEGACY_POLL = 2.0  # seconds: the old dashboard.js re-fetched its page this often


def seed(aws: Aws, instances: int) -> int:
    """An env of ``instances`` instances over two groups, each group with a completed rollout; its queue count."""
    resources = resolve(aws, ENV)
    bootstrap_env(aws, resources, GROUPS)
    ledger, registry, queues = Ledger(aws.dynamodb, resources.state_table), \
        Registry(aws.dynamodb, resources.endpoints_table), Queues(aws.sqs)
    now = time.time()
    for index, group in enumerate(GROUPS):
        members = [f"{group.split('-')[-1]}-{n}" for n in range(index, instances, len(GROUPS))]
        for number, member in enumerate(members):
            registry.register(ENV, group.split("-")[-1], Endpoint(member, group, "10.0.0.1", 9000 + number, "a" * 40,
                                                                  "healthy", now))
            queues.ensure(instance_queue(ENV, member))
        ledger.ensure_group(group, "/srv/sample-app.git", "main")
        rollout_id = f"r20261201-000000-{index:06x}"
        assert ledger.create_rollout(rollout_id, group, "a" * 40, RolloutKind.CODE, {"source": "benchmark"})  # noqa: S101
        tickets = tuple(Ticket(n + 1, m, TicketState.DONE, now - 600 + n, now - 500 + n, now - 490 + n)
                        for n, m in enumerate(members))
        rollout = Rollout(rollout_id, group, "a" * 40, state=RolloutState.COMPLETED, created_at=now - 600,
                          canary=members[0], published=True, expected=tuple(members), tickets=tickets)
        ledger.write_decision(Group(group), Decision(Group(group, line=(rollout,)), touched=(rollout,)))
    return len(queues.list(names.prefix(ENV)))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - our own loopback server
        body: bytes = response.read()
        return body


def by_service(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (service, _), count in counts.items():
        out[service] += count
    return dict(out)


class Dashboard:
    """The dashboard of the seeded env on a loopback port, its AWS requests counted by ``proxy``."""

    def __init__(self, moto: MotoServer, proxy: CountingProxy) -> None:
        environment = {**moto.environment(), "AWS_ENDPOINT_URL": proxy.url}
        kombu.pools.reset()
        aws = aws_for(environment)
        app = create_app(resolve(aws, ENV), aws, create_celery(), Auth("benchmark-token-0123456789"), max_age=3600.0)
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()


def tab(url: str, page: str, seconds: float, legacy: bool) -> None:
    """One open tab for ``seconds``, doing what dashboard.js does (or did, with ``legacy``)."""
    deadline = time.monotonic() + seconds
    if legacy:
        while time.monotonic() < deadline:
            get(f"{url}{page}?partial=1")
            time.sleep(LEGACY_POLL)
        return
    seen, fetched = "", time.monotonic()
    while (left := deadline - time.monotonic()) > 0:
        wait = max(1, min(20, int(left))) if seen else 0
        answer = json.loads(get(f"{url}/api/changes?wait={wait}&since={seen}"))
        changed = seen != "" and answer["token"] != seen
        seen = answer["token"]
        if changed or time.monotonic() - fetched >= AGE_MS:
            get(f"{url}{page}?partial=1")
            fetched = time.monotonic()
        time.sleep(answer["retry_ms"] / 1000)


def measure(size: int, scrapes: int, seconds: float, tabs: int, page: str, legacy: bool) -> dict[str, Any]:
    """The figures of one fleet size."""
    moto = MotoServer.start()
    proxy = CountingProxy()
    proxy.upstream = moto.endpoint
    try:
        queue_count = seed(aws_for(moto.environment()), size)
        figures: dict[str, Any] = {"instances": size, "queues": queue_count}
        dashboard = Dashboard(moto, proxy)
        before = proxy.snapshot()
        get(f"{dashboard.url}/metrics")
        cold = proxy.snapshot() - before
        for _ in range(scrapes):
            get(f"{dashboard.url}/metrics")
        warm = proxy.snapshot() - before - cold
        figures["cold_scrape"] = by_service(cold)
        figures[f"{scrapes}_more_scrapes_within_30s"] = by_service(warm)
        figures["sqs_per_queue_per_30s"] = round(sum(c for (s, _), c in (cold + warm).items() if s == "sqs")
                                                 / queue_count, 2)
        dashboard.stop()
        for count in (1, tabs):
            dashboard = Dashboard(moto, proxy)  # a fresh process's worth of cache
            before = proxy.snapshot()
            threads = [threading.Thread(target=tab, args=(dashboard.url, page, seconds, legacy)) for _ in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(seconds + 120)
            spent = proxy.snapshot() - before
            dashboard.stop()
            figures[f"{count}_tabs_per_minute"] = {k: round(v * 60 / seconds, 1) for k, v in by_service(spent).items()}
        return figures
    finally:
        proxy.stop()
        moto.stop()


def main() -> None:
    """Measure each size and print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the tabs stay open")
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--page", default="/queues")
    parser.add_argument("--legacy", action="store_true", help="tabs re-fetch their page every 2 s, as before")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    results = [measure(int(size), args.scrapes, args.seconds, args.tabs, args.page, args.legacy)
               for size in args.sizes.split(",")]
    for figures in results:
        print(json.dumps(figures))
    write_json({"legacy": args.legacy, "page": args.page, "results": results}, args.out)


if __name__ == "__main__":
    main()
