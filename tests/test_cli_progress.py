"""The progress line ``skynet rollout status`` prints: a build's phases, and the live line redrawn in place
on a terminal.

Computed from rollout summaries written here: no AWS. The commands themselves, against moto's server,
are ``test_cli_rollout.py``'s.
"""

from __future__ import annotations

import io

import pytest

from skynet_tasks.cli.progress import Progress, progress
from skynet_tasks.cli.watch import CLEAR_LINE, Printer

pytestmark = pytest.mark.timeout(120)


def test_on_a_terminal_the_status_line_is_redrawn_in_place():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    printer = Printer(stream=screen)
    summary = {"id": "r1", "group": "g", "release": "a" * 40, "kind": "code", "state": "running",
               "created_at": 100.0, "expected": ["i-1"], "tickets": [
                   {"number": 1, "instance": "i-1", "state": "updating", "started_at": 100.0}]}
    for now in (101.0, 102.0):
        printer.show(progress(summary, None, now))
    printer.show(progress({**summary, "state": "completed", "finished_at": 103.0, "tickets": [
        {"number": 1, "instance": "i-1", "state": "done", "started_at": 100.0, "finished_at": 103.0}]}, None, 104.0))

    text = screen.getvalue()
    # the live line is drawn, erased and drawn again a second later, then erased for the ticket's end
    assert text.count(CLEAR_LINE) == 2
    assert text.split(CLEAR_LINE)[1].endswith("running, 0/1 updated, 2.0 s: ticket 1/1 i-1 updating 2.0 s")
    assert text.endswith("ticket 1/1 i-1 done 3.0 s\nrollout r1 (group g, code aaaaaaaaaaaa): completed, 1/1 "
                         "updated, 3.0 s: every ticket done\n")


def test_progress_phases_of_a_build():
    summary = {"id": "r1", "group": "g", "release": "a" * 40, "kind": "code", "state": "building",
               "created_at": 100.0, "tickets": []}
    waiting: Progress = progress(summary, None, 110.0, members=4)

    assert (waiting.phase, waiting.total, waiting.elapsed) == \
        ("build requested, waiting for a member to build it", 4, 10.0)
