"""The README and docs/ say only what exists: a one-page README, links that resolve, commands the CLI has.

Read as text, no network, no cluster: each test takes milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from skynet_tasks.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "benchmarks" / "RESULTS.md"]

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SKYNET = re.compile(r"(?:^|[\s;&|(/$`])skynet((?:\s+[a-z][a-z-]*)+)")

pytestmark = pytest.mark.timeout(60)


def code_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


def unknown_commands(text: str) -> list[str]:
    """Each ``skynet <command> …`` in ``text`` that the CLI does not have, as far as it was named.

    The words after ``skynet`` are followed through ``main``'s click groups until one is not a
    lowercase word (an option, a placeholder such as ROLLOUT) or a command that is not a group.
    """
    unknown = []
    for line in text.splitlines():
        for match in SKYNET.finditer(line.split("#", 1)[0]):  # not in comments
            command: click.Command = main
            named = ["skynet"]
            for word in match.group(1).split():
                if not isinstance(command, click.Group):
                    break
                named.append(word)
                if word not in command.commands:
                    unknown.append(" ".join(named))
                    break
                command = command.commands[word]
    return unknown


def test_the_readme_is_one_page() -> None:
    assert len(README.read_text().splitlines()) < 150


def test_the_readmes_first_code_block_is_the_two_commands() -> None:
    first = code_blocks(README)[0]
    assert first.splitlines() == [
        "make demo    # sets up everything, then runs the whole story on a local cluster",
        "make test    # sets up everything, then runs the linters and the test suite",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_that_exists(page: Path) -> None:
    text = FENCE.sub("", page.read_text())  # links in code blocks are not links
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor on the same page
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert broken == [], f"{page.relative_to(ROOT)} links to missing files"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_skynet_command_in_a_code_block_exists(page: Path) -> None:
    named = [command for block in code_blocks(page) for command in unknown_commands(block)]
    assert named == [], f"{page.relative_to(ROOT)} names commands the CLI does not have"


def test_the_command_check_finds_a_command_the_cli_does_not_have() -> None:
    text = """skynet rollout retry ROLLOUT --env prod
/opt/skynet/bin/skynet instance install-units      # skynet frobnicate in a comment
systemctl restart skynet-worker
skynet rollout restart ROLLOUT
.venv/bin/skynet frobnicate --now
skynet monitor serve needs the dashboard extra
"""
    assert unknown_commands(text) == ["skynet rollout restart", "skynet frobnicate"]
