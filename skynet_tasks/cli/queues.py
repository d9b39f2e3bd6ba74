"""``skynet queues ...``: the env's SQS queues, as the operator tends them."""

from __future__ import annotations

import json

import click

from skynet_tasks.cli.options import env_option, env_resources, json_option
from skynet_tasks.queue_prune import MIN_AGE


@click.group()
def queues() -> None:
    """The env's SQS queues."""


@queues.command("prune")
@env_option
@click.option("--min-age", type=click.FloatRange(min=0), default=MIN_AGE, show_default=True,
              help="Seconds: a younger queue is left alone (its instance may still be booting).")
@json_option
def prune_command(env: str, min_age: float, as_json: bool) -> None:
    """Delete the queues of instances gone from the registry (instances may not delete queues)."""
    from skynet_tasks.aws import Aws
    from skynet_tasks.queue_prune import prune_instance_queues, prune_subscriptions
    from skynet_tasks.queues import Queues
    from skynet_tasks.registry import Registry

    aws = Aws()
    registry = Registry(aws.dynamodb, env_resources(aws, env).endpoints_table)
    pruned = prune_instance_queues(Queues(aws.sqs), registry, env, min_age=min_age)
    unsubscribed = prune_subscriptions(aws, Queues(aws.sqs), env)
    if as_json:
        click.echo(json.dumps({"deleted": list(pruned.deleted), "too_young": list(pruned.too_young),
                               "unsubscribed": unsubscribed}))
        return
    for queue in pruned.deleted:
        click.echo(f"deleted {queue} (and its dead-letter queue)")
    for queue in unsubscribed:
        click.echo(f"unsubscribed {queue}, which is gone, from its group's topic")
    for queue in pruned.too_young:
        click.echo(f"left {queue}: younger than {min_age:.0f}s, its instance may still be booting")
    if not pruned.deleted and not pruned.too_young and not unsubscribed:
        click.echo(f"no queue of a gone instance in env {env}")
