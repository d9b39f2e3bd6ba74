"""Following a rollout until it ends, as ``skynet rollout status --watch`` and ``deploy --wait`` print it.

Plain lines when the stream is not a terminal (one per change: a ticket's new state, the rollout's new
state or build phase); on a terminal the same lines, under a status line redrawn in place at each
poll with click's own output. ``--json`` prints one object per change (JSON Lines), in
``Progress.to_json``'s schema.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import click

from skynet_tasks.cli import exitcodes
from skynet_tasks.cli.lookup import RolloutReader
from skynet_tasks.cli.progress import Progress

POLL_INTERVAL = 0.5
_SECONDS = re.compile(r"\d+(\.\d+)? s")
CLEAR_LINE = "\r\x1b[K"  # carriage return, then erase to the end of the line


@dataclass
class Printer:
    """Prints a rollout's progress as it changes, to ``stream``, plainly or redrawn on a terminal."""

    as_json: bool = False
    stream: IO[str] | None = None
    tty: bool | None = None
    _tickets: dict[int, str] = field(default_factory=dict)
    _last: tuple[Any, ...] | None = None
    _live: bool = False

    def __post_init__(self) -> None:
        if self.stream is None:
            self.stream = sys.stdout
        if self.tty is None:
            self.tty = not self.as_json and self.stream.isatty()

    def _echo(self, text: str, nl: bool = True) -> None:
        if self._live:
            click.echo(CLEAR_LINE, file=self.stream, nl=False)
            self._live = False
        click.echo(text, file=self.stream, nl=nl)

    def show(self, now: Progress) -> None:
        """Print what changed since the last call (every call redraws the status line on a terminal)."""
        key = (now.state, _SECONDS.sub("", now.phase), tuple((t.number, t.state) for t in now.tickets))
        changed = key != self._last
        self._last = key
        if self.as_json:
            if changed:
                self._echo(json.dumps(now.to_json()))
            return
        for ticket in now.tickets:
            if self._tickets.get(ticket.number) != ticket.state:
                self._tickets[ticket.number] = ticket.state
                self._echo(ticket.line())
        if self.tty and not now.over:
            self._echo(now.headline(), nl=False)
            self._live = True
        elif changed:
            self._echo(now.headline())

    def finish(self) -> None:
        """End the status line redrawn on a terminal (before the command's last words)."""
        if self._live:
            click.echo(CLEAR_LINE, file=self.stream, nl=False)
            self._live = False

    def say(self, text: str) -> None:
        """A line of its own (a timeout, a rollout deleted while watched); a JSON object under ``--json``."""
        self._echo(json.dumps({"message": text}) if self.as_json else text)


def follow(reader: RolloutReader, rollout_id: str, printer: Printer, timeout: float, watch: bool = True,
           interval: float = POLL_INTERVAL, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> tuple[int, Progress]:
    """Print the rollout's progress until it ends (or once, without ``watch``); its exit code and last progress.

    Exit code: the outcome's (0 completed, 1 halted or ended otherwise) once over; 3 past ``timeout``;
    without ``watch``, 0 for a rollout still in progress. An unknown rollout is an input error (4);
    a rollout deleted while watched ends the command with exit 1, saying so.
    """
    deadline = clock() + timeout
    summary = reader.require(rollout_id)
    while True:
        now = reader.progress(summary)
        printer.show(now)
        if now.over or not watch:
            return (now.exit_code if now.over else exitcodes.OK), now
        if clock() >= deadline:
            printer.say(f"rollout {rollout_id}: still {now.state} after {timeout:.0f} s; stopped watching")
            return exitcodes.TIMEOUT, now
        sleep(interval)
        found = reader.summary(rollout_id)
        if found is None:
            printer.finish()
            raise exitcodes.Failed(f"rollout {rollout_id} was deleted while watched")
        summary = found
