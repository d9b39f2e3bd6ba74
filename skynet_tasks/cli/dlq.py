"""``skynet dlq show|redrive GROUP``: the dead letters of a group's maintenance queue."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import click

from skynet_tasks import names
from skynet_tasks.cli.options import env_option, json_option
from skynet_tasks.deadletters import DeadLetter, DeadLetterError, DeadLetters


def _group(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return names.check_name_part("group", value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _dead_letters(env: str) -> DeadLetters:
    from skynet_tasks.aws import Aws

    return DeadLetters(Aws().sqs, env)


def _line(letter: DeadLetter) -> str:
    sent = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.sent_at)) if letter.sent_at else "-"
    return (f"  {letter.kind or letter.task or 'unreadable'}  rollout {letter.rollout_id or '-'}  sent {sent} UTC  "
            f"received {letter.receive_count}x  group {letter.message_group or '-'}  id {letter.message_id}")


@click.group()
def dlq() -> None:
    """Dead letters: maintenance events that failed too often and left their queue."""


@dlq.command("show")
@env_option
@click.argument("group", callback=_group)
@json_option
def show_command(env: str, group: str, as_json: bool) -> None:
    """List GROUP's dead letters (event kind, rollout, sent time, receive count), leaving them in place."""
    try:
        letters = _dead_letters(env).show(group)
    except DeadLetterError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps([asdict(letter) for letter in letters], indent=2))
        return
    if not letters:
        click.echo(f"group {group}: no dead letters")
        return
    click.echo(f"group {group}: {len(letters)} dead letter{'s' if len(letters) != 1 else ''}")
    for letter in letters:
        click.echo(_line(letter))


@dlq.command("redrive")
@env_option
@click.argument("group", callback=_group)
@json_option
def redrive_command(env: str, group: str, as_json: bool) -> None:
    """Send GROUP's dead letters back to its maintenance queue; exit 1 if one could not be sent."""
    try:
        done = _dead_letters(env).redrive(group)
    except DeadLetterError as error:
        raise click.ClickException(str(error)) from None
    result: dict[str, Any] = {"group": group, "redriven": [asdict(letter) for letter in done.sent],
                              "failed": [{**asdict(letter), "error": reason} for letter, reason in done.failed]}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"group {group}: {len(done.sent)} dead letter{'s' if len(done.sent) != 1 else ''} sent back")
        for letter in done.sent:
            click.echo(_line(letter))
        for letter, reason in done.failed:
            click.echo(f"not sent, left in the dead-letter queue: {_line(letter).strip()}: {reason}", err=True)
    if done.failed:
        raise SystemExit(1)
