"""How long the stack-built local cluster takes to come up, and an instance to boot from its user data.

For each size, builds a cluster (``StackCluster``: the template deployed into moto with IAM
enforced, each instance booting from its user data in its own namespaces), then takes it down.
It prints, per size: the stack phase (moto, the operator, the wheel build, the stack), each
instance's boot (metadata stand-in, user data: the wheel verified and installed, ``workers.boot``),
and the time until every instance is registered. Needs root.

    .venv/bin/python -m benchmarks.stack_boot --sizes 1,3,6 [--out benchmarks/results/stack_boot.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks.report import write_json
from skynet_tasks.local.stack_cluster import StackCluster


def measure(api: int, rp: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="skynet-stack-boot-") as directory:
        cluster = StackCluster(Path(directory))
        try:
            cluster.up(api=api, rp=rp)
        finally:
            cluster.down()
    boots = [seconds for name, seconds in cluster.timings.items() if name.startswith("boot:")]
    return {"api": api, "rp": rp, "stack_s": round(cluster.timings["stack"], 2),
            "boot_mean_s": round(statistics.mean(boots), 2), "boot_max_s": round(max(boots), 2),
            "up_s": round(cluster.timings["up"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,3,6", help="API instances per run, comma-separated (one RP each)")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    figures = [measure(int(size), 1) for size in args.sizes.split(",")]
    print(json.dumps({"stack_boot": figures}, indent=2))
    write_json({"stack_boot": figures}, args.out)


if __name__ == "__main__":
    main()
