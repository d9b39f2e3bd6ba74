"""Health check of the sample app: fails on the tickets or instances listed in fail-on.txt.

A commit that adds ``fail-on.txt`` with ``ticket:2`` (or an instance id) makes the
update of that ticket fail its health check, which is how the demo and the
tests show a halted rollout. The same file in the instance's config directory
(``$SKYNET_CONFIG_DIR/fail-on.txt``, pushed with ``skynet config push``) does the
same for a config-update rollout.

``hold-on.txt`` in the release or the config directory, with lines ``ticket:N PATH``, makes ticket N's health check
wait until PATH exists (at most ``HOLD_SECONDS``, then it passes): a test can then act while a
rollout is surely in the middle of that ticket.

An app that passes this check and turns unhealthy later is ``unhealthy-after.txt``'s (``app.py``:
its ``/health``, which the update checks over HTTP, fails N seconds after its first answer).
"""

import os
import pathlib
import sys
import time

HOLD_SECONDS = 12  # under the health check's timeout in skynet.yml

for rules in (pathlib.Path("fail-on.txt"), pathlib.Path(os.environ.get("SKYNET_CONFIG_DIR", "/nonexistent"),
                                                           "fail-on.txt")):
    if rules.exists():
        wanted = {line.strip() for line in rules.read_text().splitlines() if line.strip()}
        if f"ticket:{os.environ.get('SKYNET_TICKET', '')}" in wanted or os.environ.get("SKYNET_INSTANCE_ID") in wanted:
            sys.exit(f"health check failed on purpose ({rules})")

for holds in (pathlib.Path("hold-on.txt"), pathlib.Path(os.environ.get("SKYNET_CONFIG_DIR", "/nonexistent"),
                                                         "hold-on.txt")):
    for line in holds.read_text().splitlines() if holds.exists() else ():
        ticket, _, gate = line.strip().partition(" ")
        if ticket == f"ticket:{os.environ.get('SKYNET_TICKET', '')}" and gate:
            until = time.monotonic() + HOLD_SECONDS
            while not pathlib.Path(gate).exists() and time.monotonic() < until:
                time.sleep(0.1)
