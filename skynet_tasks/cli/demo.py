"""``skynet demo``."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from skynet_tasks.cli.extras import require_extra
from skynet_tasks.local.cluster_info import ClusterError
from skynet_tasks.local.network import NetworkError


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".local-cluster/demo"), show_default=True, help="Where the demo cluster keeps its files.")
@click.option("--once", is_flag=True, help="Exit after the story (non-zero if a step misbehaved).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary of each step (implies quiet progress).")
@click.option("--plain", is_flag=True,
              help="The plain local cluster (processes on loopback, no root needed) instead of the stack-built one.")
def demo(directory: Path, once: bool, as_json: bool, plain: bool) -> None:
    """Bring up a local cluster and show a good rollout, a halted one, a fix, and a failure reverted.

    By default the cluster is built from cloudformation/php-nginx.yaml as AWS builds it
    (IAM enforced, each instance booting from its user data in its own namespaces): run as root.
    """
    require_extra("local", "skynet demo")
    from skynet_tasks.demo import Demo, DemoError, summary_json

    def say(text: str) -> None:
        click.echo(text, err=as_json)

    story = Demo(directory.resolve(), say, stack=not plain)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        story.up()
        results = story.run_story()
        if as_json:
            click.echo(summary_json(results))
        behaved = all(r.behaved for r in results)
        say("\nthe story went as told" if behaved else "\nsome step did not behave as told")
        if not once:
            info = story.cluster.require_info()
            say(f"the cluster stays up: `source {directory}/env.sh; skynet status` in another shell; "
                f"the app through the proxy: {info.rp_url}/api/local/; "
                f"the dashboard: {info.dashboard_url} (actions need the token in {info.dashboard_token_file}); "
                "Ctrl-C stops it")
            stop.wait()
    except (ClusterError, DemoError, NetworkError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        story.down()
    if once and not behaved:
        sys.exit(1)
