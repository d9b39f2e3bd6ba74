"""``python -m skynet_tasks.local.moto_main``: moto's server, with the patches that make it behave as AWS does.

The patches live in ``skynet_tasks.compat`` (``moto_sqs``, ``moto_dynamodb``, ``moto_iam``,
``moto_cfn``), each with the reason it exists and the moto versions it was written for.
"""

from __future__ import annotations

import logging

from skynet_tasks.compat import install_moto_patches
from skynet_tasks.compat.moto_iam import SERVICE_USER_PREFIX

__all__ = ["SERVICE_USER_PREFIX", "main"]  # the IAM user that plays a service (imds, stack_aws) lives there


def main() -> None:
    """Install the moto patches, then serve (moto's own command line: ``-H HOST -p PORT``)."""
    # Only the compat line joins moto's log: moto's and werkzeug's own logging stay as they are.
    compat_log = logging.getLogger("skynet_tasks.compat")
    compat_log.addHandler(logging.StreamHandler())
    compat_log.setLevel(logging.INFO)
    install_moto_patches()
    from moto.server import main as moto_server

    moto_server()


if __name__ == "__main__":
    main()
