"""``python -m skynet_tasks.local.moto_main``: moto's server, with the patches that make it behave as AWS does.

The patches live in ``skynet_tasks.compat`` (``moto_sqs``, ``moto_dynamodb``, ``moto_iam``,
``moto_cfn``), each with the reason it exists and the moto versions it was written for.
``--faults SPEC`` (taken out before moto reads its arguments) makes it misbehave as AWS can:
see ``skynet_tasks.local.faults``; ``--sqs-recheck SECONDS`` sets the longest an idle long
poll waits without looking again (``compat.moto_sqs``); ``--count-requests`` counts every request
it serves, by service and operation (``skynet_tasks.local.request_counts``: the benchmarks).

Its log (the cluster's ``logs/moto.log``) keeps the requests AWS would refuse or fail (4xx, 5xx:
an IAM denial is a 403 there, which the stack's tests look for), not every request that succeeded:
writing a line per request was a tenth of moto's CPU on a busy local cluster, and moto is the
process every instance waits on. The benchmarks count every request with ``--count-requests`` instead.
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack

from skynet_tasks.compat import install_moto_patches, moto_sqs
from skynet_tasks.compat.moto_iam import SERVICE_USER_PREFIX
from skynet_tasks.local import faults, request_counts

# SERVICE_USER_PREFIX: the IAM user that plays a service (imds, stack_aws) lives there.
__all__ = ["SERVICE_USER_PREFIX", "FailedRequestsOnly", "main"]

# werkzeug's line for a request it answered: ``"METHOD PATH VERSION" CODE SIZE`` (``log_request``).
_REQUEST_LINE = '"%s" %s %s'


class FailedRequestsOnly(logging.Filter):
    """Passes werkzeug's request lines only for requests refused or failed (4xx, 5xx); every other line passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the line of a request answered 1xx to 3xx; True for every other line."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 3 and _REQUEST_LINE in str(record.msg):
            return not str(args[1]).startswith(("1", "2", "3"))
        return True


def take_recheck_argument(argv: list[str]) -> tuple[float, list[str]]:
    """The seconds of ``--sqs-recheck SECONDS`` / ``--sqs-recheck=SECONDS`` in ``argv`` (the default if
    absent; the last one if repeated), and argv without it; ValueError for a value that is not in range."""
    seconds, rest = moto_sqs.DEFAULT_RECHECK, []
    args = iter(argv)
    for arg in args:
        if arg == "--sqs-recheck" or arg.startswith("--sqs-recheck="):
            value = arg.partition("=")[2] if "=" in arg else next(args, "")
            try:
                seconds = moto_sqs.check_recheck(float(value))
            except ValueError as error:
                raise ValueError(f"--sqs-recheck {value!r}: {error}") from None
        else:
            rest.append(arg)
    return seconds, rest


def main(argv: list[str] | None = None) -> None:
    """Install the moto patches and the fault modes asked for, then serve (moto's own command line:
    ``-H HOST -p PORT``, plus ``--faults SPEC``, ``--sqs-recheck SECONDS`` and ``--count-requests``)."""
    try:
        chosen, rest = faults.take_faults_argument(sys.argv[1:] if argv is None else argv)
        recheck, rest = take_recheck_argument(rest)
    except (faults.FaultSpecError, ValueError) as error:
        sys.exit(f"moto_main: {error}")
    counting = "--count-requests" in rest
    moto_argv = [arg for arg in rest if arg != "--count-requests"]
    # Only the compat and fault lines join moto's log; moto's own logging stays as it is, and werkzeug's request
    # lines are those of refused or failed requests (see the module's docstring).
    for name in ("skynet_tasks.compat", "skynet_tasks.local.faults", "skynet_tasks.local.faults_conflicts",
                 "skynet_tasks.local.faults_throttle", "skynet_tasks.local.faults_duplicates",
                 "skynet_tasks.local.faults_stale"):
        ours = logging.getLogger(name)
        ours.addHandler(logging.StreamHandler())
        ours.setLevel(logging.INFO)
        ours.propagate = False
    logging.getLogger("werkzeug").addFilter(FailedRequestsOnly())
    install_moto_patches()
    moto_sqs.set_recheck(recheck)
    with ExitStack() as stack:
        if chosen.active:
            faults.install(chosen, stack)
        if counting:  # outermost: a request a fault mode refuses was still asked of AWS
            request_counts.install(stack)
        from moto.server import main as moto_server

        sys.argv[1:] = moto_argv  # moto reads sys.argv when given an empty list
        moto_server(moto_argv)


if __name__ == "__main__":
    main()
