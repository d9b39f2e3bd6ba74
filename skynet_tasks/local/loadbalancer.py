"""A local stand-in for the Application Load Balancer in front of the reverse-proxy layer.

``python -m skynet_tasks.local.loadbalancer --listen HOST:PORT --targets-file F
(--health-check-json J | --target-group-json J)`` listens on HOST:PORT and forwards
each connection to a target of the file that passes the target group's health
check; the file is re-read every interval. A thin click layer over
:class:`~skynet_tasks.local.balancer.LoadBalancer`, which a Python caller can run itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from skynet_tasks.local.balancer import LoadBalancer
from skynet_tasks.local.healthcheck import ConfigError, HealthCheck
from skynet_tasks.local.targets import Target, TargetState, parse_address, read_targets_file

__all__ = ["ConfigError", "HealthCheck", "LoadBalancer", "Target", "TargetState", "main", "read_targets_file",
           "serve"]

log = logging.getLogger(__name__)


async def serve(balancer: LoadBalancer, ready_file: Path | None = None, grace: float = 10.0) -> None:
    """Run ``balancer`` until SIGTERM or SIGINT; announce it on stdout (and in ``ready_file``) once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await balancer.start()
    host, port = balancer.address
    if ready_file is not None:
        # Written whole then renamed, so a reader never sees half of it.
        partial = ready_file.with_name(ready_file.name + ".tmp")
        partial.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
        partial.replace(ready_file)
    print(f"listening on {host}:{port}", flush=True)
    await stop.wait()
    log.info("stopping on request")
    await balancer.stop(grace)


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint=option) from None
    if not isinstance(value, dict):
        raise click.BadParameter("expected a JSON object", param_hint=option)
    return value


def _health_check(health_check_json: str | None, target_group_json: str | None) -> tuple[HealthCheck, int | None]:
    """The health check and the port of targets listed without one (the target group's ``Port``)."""
    if (health_check_json is None) == (target_group_json is None):
        raise click.UsageError("give exactly one of --health-check-json and --target-group-json")
    try:
        if health_check_json is not None:
            return HealthCheck.from_config(_json_object(health_check_json, "--health-check-json")), None
        group = _json_object(str(target_group_json), "--target-group-json")
        port = group.get("Port")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
            raise ConfigError(f"target group Port {port!r} is not a port number")
        return HealthCheck.from_target_group(group), port
    except ConfigError as error:
        option = "--health-check-json" if health_check_json is not None else "--target-group-json"
        raise click.BadParameter(str(error), param_hint=option) from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--listen", required=True, envvar="SKYNET_LB_LISTEN", help="HOST:PORT to listen on (port 0: any).")
@click.option("--targets-file", required=True, envvar="SKYNET_LB_TARGETS_FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="One HOST:PORT a line; re-read every interval (replace it atomically).")
@click.option("--health-check-json", help='Our keys, e.g. {"path": "/health", "interval": 10, '
              '"healthy_threshold": 2}; AWS defaults for the rest.')
@click.option("--target-group-json", help="One target group as ELBv2 describe_target_groups returns it.")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Written (JSON: host, port, pid) once listening.")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds to connect to a target before trying the next.")
@click.option("--grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds connections in flight get to finish at SIGTERM.")
@click.option("-v", "--verbose", is_flag=True, help="Log every failed health check too.")
def main(listen: str, targets_file: Path, health_check_json: str | None, target_group_json: str | None,
         ready_file: Path | None, connect_timeout: float, grace: float, verbose: bool) -> None:
    """Forward connections on LISTEN to the healthy targets of TARGETS_FILE, as an ALB does."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check, default_port = _health_check(health_check_json, target_group_json)
    try:
        address = parse_address(listen, what="listen address")
    except ConfigError as error:
        raise click.BadParameter(str(error), param_hint="--listen") from None
    try:
        # Read once now, so a missing or malformed file is an error at start rather than an empty pool.
        read_targets_file(targets_file, default_port)
    except (OSError, ConfigError) as error:
        raise click.BadParameter(str(error), param_hint="--targets-file") from None
    balancer = LoadBalancer((address.host, address.port), lambda: read_targets_file(targets_file, default_port),
                            check, connect_timeout=connect_timeout)
    try:
        asyncio.run(serve(balancer, ready_file, grace))
    except OSError as error:
        raise click.ClickException(f"load balancer on {listen}: {error}") from None


if __name__ == "__main__":
    main()
