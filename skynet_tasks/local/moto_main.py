"""``python -m skynet_tasks.local.moto_main``: moto's server, with the patches that make it behave as AWS does.

The patches live in ``skynet_tasks.compat`` (``moto_sqs``, ``moto_dynamodb``, ``moto_iam``,
``moto_cfn``), each with the reason it exists and the moto versions it was written for.
``--faults SPEC`` (taken out before moto reads its arguments) makes it misbehave as AWS can:
see ``skynet_tasks.local.faults``.
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack

from skynet_tasks.compat import install_moto_patches
from skynet_tasks.compat.moto_iam import SERVICE_USER_PREFIX
from skynet_tasks.local import faults

__all__ = ["SERVICE_USER_PREFIX", "main"]  # the IAM user that plays a service (imds, stack_aws) lives there


def main(argv: list[str] | None = None) -> None:
    """Install the moto patches and the fault modes asked for, then serve (moto's own command line:
    ``-H HOST -p PORT``, plus ``--faults SPEC``)."""
    try:
        chosen, moto_argv = faults.take_faults_argument(sys.argv[1:] if argv is None else argv)
    except faults.FaultSpecError as error:
        sys.exit(f"moto_main: {error}")
    # Only the compat and fault lines join moto's log: moto's and werkzeug's own logging stay as they are.
    for name in ("skynet_tasks.compat", "skynet_tasks.local.faults", "skynet_tasks.local.faults_conflicts",
                 "skynet_tasks.local.faults_throttle", "skynet_tasks.local.faults_duplicates",
                 "skynet_tasks.local.faults_stale"):
        ours = logging.getLogger(name)
        ours.addHandler(logging.StreamHandler())
        ours.setLevel(logging.INFO)
        ours.propagate = False
    install_moto_patches()
    with ExitStack() as stack:
        if chosen.active:
            faults.install(chosen, stack)
        from moto.server import main as moto_server

        sys.argv[1:] = moto_argv  # moto reads sys.argv when given an empty list
        moto_server(moto_argv)


if __name__ == "__main__":
    main()
