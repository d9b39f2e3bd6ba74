"""Health check of the sample app: fails on the tickets or instances listed in fail-on.txt.

A commit that adds ``fail-on.txt`` with ``ticket:2`` (or an instance id) makes the
update of that ticket fail its health check, which is how the demo and the
tests show a halted rollout. The same file in the instance's config directory
(``$SKYNET_CONFIG_DIR/fail-on.txt``, pushed with ``skynet config push``) does the
same for a config-update rollout.
"""

import os
import pathlib
import sys

for rules in (pathlib.Path("fail-on.txt"), pathlib.Path(os.environ.get("SKYNET_CONFIG_DIR", "/nonexistent"),
                                                           "fail-on.txt")):
    if rules.exists():
        wanted = {line.strip() for line in rules.read_text().splitlines() if line.strip()}
        if f"ticket:{os.environ.get('SKYNET_TICKET', '')}" in wanted or os.environ.get("SKYNET_INSTANCE_ID") in wanted:
            sys.exit(f"health check failed on purpose ({rules})")
