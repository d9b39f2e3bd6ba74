"""``python -m workers.buildrun run ROOT ID``: the build user's runner, the entry point of
``skynet-build@.service`` (and of ``workers.appctl``'s stand-in for it).

What it runs and how the worker asks for it is ``skynet_tasks.build_user``; this module is
only the process the unit starts, as ``skynet-build``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from skynet_tasks.build_user import run_request


def main(argv: list[str] | None = None) -> int:
    """Run the request named on the command line as this process's user; its exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "run":
        print("usage: python -m workers.buildrun run ROOT ID", file=sys.stderr)
        return 2
    os.umask(0o007)  # what a build step writes, the worker (of the group) may pack and remove
    # Stopped (``systemctl stop``: the worker that asked for this step died), the command goes with the runner:
    # SystemExit reaches ``commands.run``, which kills the command's process group.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return run_request(Path(args[1]), args[2])


if __name__ == "__main__":
    sys.exit(main())
