"""The proxy layer: render + validate + reload time for 10, 100 and 1,000 endpoints.

Registers N endpoints in the endpoints table on moto's server, then times one sync
(read the registry, check every entry, render, ``nginx -t``, swap, reload and wait
for the new workers) with real nginx, five times per size.

    .venv/bin/python -m benchmarks.rp_render [--sizes 10,100,1000] [--out results/rp_render.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_json
from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.local.motoserver import MotoServer, free_port
from skynet_tasks.proxy.nginx import NginxControl
from skynet_tasks.proxy.sync import RpSync
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    server = MotoServer.start()
    results = []
    try:
        aws = aws_for(server.environment())
        bootstrap_env(aws, resolve(aws, "local"), ["local-api"])
        registry = Registry(aws.dynamodb, names.endpoints_table("local"))
        for size in [int(s) for s in args.sizes.split(",")]:
            for layer in ("api", "rp"):
                aws.dynamodb.delete_item(TableName=names.endpoints_table("local"),
                                         Key={"env": {"S": "local"}, "layer": {"S": layer}})
            for n in range(size):
                registry.register("local", "api", Endpoint(f"api-{n}", "local-api", f"10.0.{n // 250}.{n % 250 + 1}",
                                                            8000, "r1", "healthy", time.time() + 3600))
            port = free_port()
            sync = RpSync(registry, "local", 7200, NginxControl(Path(tempfile.mkdtemp()), listen_port=port,
                                                                 listen_address="127.0.0.1"), port, "127.0.0.1")
            sync.start()
            timings = []
            try:
                for run in range(args.runs):
                    # A changed entry each run, so that every sync validates and reloads.
                    registry.register("local", "api", Endpoint("api-0", "local-api", "10.0.0.1", 8001 + run, "r1",
                                                               "healthy", time.time() + 3600))
                    started = time.perf_counter()
                    result = sync.sync_once()
                    timings.append(time.perf_counter() - started)
                    assert result.ok and result.reloaded, result
            finally:
                sync.control.stop()
            figures = {"endpoints": size, "sync_median_ms": round(statistics.median(timings) * 1000, 1),
                       "sync_max_ms": round(max(timings) * 1000, 1), "runs": args.runs}
            results.append(figures)
            print(json.dumps(figures), flush=True)
    finally:
        server.stop()
    write_json(results, args.out)


if __name__ == "__main__":
    main()
