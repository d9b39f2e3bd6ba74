"""``skynet local up`` and ``skynet local down``: a whole cluster on this machine."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from skynet_tasks.cli.extras import require_extra
from skynet_tasks.local.cluster import ClusterError, LocalCluster
from skynet_tasks.local.faults import FaultSpecError, parse_faults
from skynet_tasks.local.network import NetworkError
from skynet_tasks.local.stack_cluster import StackCluster


@click.group()
def local() -> None:
    """A local cluster: moto's server as AWS, real workers, a sample app."""


@local.command("up")
@click.option("--api", type=click.IntRange(1, 50), default=3, show_default=True, help="API instances.")
@click.option("--rp", type=click.IntRange(0, 5), default=0, show_default=True, help="Reverse-proxy instances.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path(".local-cluster"),
              show_default=True, help="Where the cluster keeps its files.")
@click.option("--detach", is_flag=True, help="Return once the cluster is up; stop it with `skynet local down`.")
@click.option("--heartbeat", type=click.FloatRange(0.5, 600), default=5.0, show_default=True,
              help="Heartbeat interval of the instances, in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the cluster's description as JSON.")
@click.option("--stack", is_flag=True,
              help="Build it from cloudformation/php-nginx.yaml as AWS does: IAM enforced, each instance booting "
                   "from its user data in its own network namespace, a load-balancer stand-in (needs root).")
@click.option("--faults", default="", metavar="MODES",
              help="Make the local AWS misbehave as AWS can: conflicts[=MS] (overlapping DynamoDB transactions "
                   "cancelled with TransactionConflict), throttle[=RATE] (that fraction of DynamoDB, SQS and S3 "
                   "requests throttled), duplicates[=RATE] (SQS messages delivered again), stale-reads[=SECONDS] "
                   "(eventually consistent DynamoDB reads answer the previous version); comma-separated. "
                   "See docs/development.md.")
def up(api: int, rp: int, directory: Path, detach: bool, heartbeat: float, as_json: bool, stack: bool,
       faults: str) -> None:
    """Start a local cluster in DIR."""
    require_extra("local", "skynet local up")
    try:
        faults = parse_faults(faults).spec()
    except FaultSpecError as error:
        raise click.BadParameter(str(error), param_hint="--faults") from None
    cluster: LocalCluster | StackCluster
    try:
        if stack:
            cluster = StackCluster(directory, faults=faults)
            info = cluster.up(api=api, rp=rp, services=True)
        else:
            cluster = LocalCluster(directory, heartbeat_interval=heartbeat,
                                   heartbeat_max_age=max(30.0, heartbeat * 6), faults=faults)
            info = cluster.up(api=api, rp=rp)
    except (ClusterError, NetworkError) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(info.to_json(), indent=2))
    else:
        click.echo(f"local cluster up in {info.dir}: {len(info.instances)} instances; "
                   f"`source {info.dir}/env.sh` to point a shell at it; sample app at {info.app_repo}")
    if detach:
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if not as_json:
        click.echo("Ctrl-C stops it.")
    stop.wait()
    cluster.down()


@local.command("down")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path(".local-cluster"),
              show_default=True)
def down(directory: Path) -> None:
    """Stop every process of the local cluster in DIR (plain or stack-built)."""
    if (directory / "stack.json").exists():
        StackCluster(directory).down()
    else:
        LocalCluster(directory).down()
    click.echo(f"local cluster in {directory} stopped")
