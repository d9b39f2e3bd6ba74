"""kombu's SQS transport: its boto3 sessions share the process's model loader, as Skynet's own do.

kombu 5.7 makes each of its clients (the channel's SQS client, and the SNS client of a fan-out) from a new
``boto3.Session``, whose botocore session has a loader of its own: each parses botocore's endpoint and
service models again. Measured on this machine: 0.09 s of CPU and 8 to 10 MB of memory per client, against
0.02 to 0.03 s and under 1 MB with the process's loader (``skynet_tasks.aws.new_session``). Every worker
process holds kombu's SQS client, and the group's conductor an SNS client for its broadcast
(``skynet_tasks.broadcast``), made when it first tells the group, while the canary updates.

The transport module sees boto3 through its module global ``boto3``; here that name gives it boto3 itself,
except that ``Session`` is ``new_session`` (which takes ``boto3.Session``'s arguments). kombu's own code
still makes every client, with its region, credentials, endpoint and configuration.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace


class _Boto3SharingTheLoader:
    """The ``boto3`` module, except that its sessions share the process's model loader."""

    def __init__(self, boto3: Any, new_session: Any) -> None:
        self._boto3 = boto3
        self.Session = new_session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._boto3, name)


def _apply(stack: ExitStack) -> None:
    import boto3
    from kombu.transport import SQS

    from skynet_tasks.aws import new_session

    replace(stack, SQS, "boto3", _Boto3SharingTheLoader(boto3, new_session))


PATCH = Patch("sqs_shared_loader", "kombu", ">=5.7,<5.8", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
