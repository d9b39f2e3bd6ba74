"""A canary held until its group has lined up: the first hand-off without the line-up beside it.

When a rollout starts, every member asks for its ticket while the canary updates. On this 2-core machine, at
40 instances, that line-up (39 worker processes woken at once, and moto serving them) outlasts the canary's
update, and the canary's report, the first hand-off, shares the machine with the last ticket requests. With
``--canary-waits-for-line`` the measured releases carry the sample app's ``hold-on.txt``: the canary's health
check waits for a file, and the benchmark makes it once every member holds its ticket (at most the sample
app's ``check.HOLD_SECONDS`` later, the check passes anyway). The first hand-off is then measured on a formed
line, as on EC2, where each member asks from its own cores while the canary updates for longer than that.
The figures of the plain run are the machine's; those of this one, the design's.
"""

from __future__ import annotations

import time
from pathlib import Path

from skynet_tasks.ledger import Ledger

POLL_EVERY = 0.2  # one GetItem of the rollout's record: cheap beside the line-up it waits for
# The sample app's check waits at most this long for the gate (``sample_app/check.py``'s ``HOLD_SECONDS``;
# that file is the app's, run by its health check, not a module to import).
HELD_AT_MOST = 12.0


class LineGate:
    """The file a held canary waits for, made once ``members`` tickets were issued in the rollout."""

    def __init__(self, path: Path, members: int) -> None:
        self.path = path
        self.members = members

    def release_files(self) -> dict[str, str]:
        """The files a measured release adds, so that its canary (ticket 1) waits for this gate."""
        return {"hold-on.txt": f"ticket:1 {self.path}\n"}

    def wait_and_open(self, ledger: Ledger, rollout_id: str, timeout: float = HELD_AT_MOST) -> float:
        """Open the gate once every member holds a ticket; return the seconds that took (``timeout`` at most)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            header = ledger.rollout_item(rollout_id) or {}
            if int(header.get("last_number", 0)) >= self.members:
                break
            time.sleep(POLL_EVERY)
        self.path.touch()
        return time.monotonic() - started
