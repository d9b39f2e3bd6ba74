"""The ``skynet`` command's exit codes, in one place (docs/operations.md, "Exit codes", lists them).

======  ==================================================================================
code    meaning
======  ==================================================================================
0       done: the command did what it was asked; a rollout it waited for completed
1       failed: a rollout halted, failed its build, was aborted or superseded, or was
        deleted while watched; or the command itself failed (a refused action, a stack
        error)
3       timeout: gave up waiting (``--wait``/``--watch`` past ``--timeout``)
4       usage or input error: an unknown option or command, a bad value, an unknown
        rollout, group or instance, a bad ``SKYNET_*`` variable
5       AWS unreachable: no connection to the endpoint, a connect timeout, no credentials
======  ==================================================================================

2 is never returned: click's own usage errors (2 by default) become 4, so that 2 means
nothing a script could mistake for a timeout (it did before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import click
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import NoCredentialsError, PartialCredentialsError

from skynet_tasks.states import RolloutState

OK = 0
FAILED = 1
TIMEOUT = 3
INPUT = 4
AWS_UNREACHABLE = 5

# What botocore raises when AWS cannot be reached at all: EndpointConnectionError, ConnectTimeoutError,
# ProxyConnectionError and SSLError are ConnectionErrors; no credentials means no request can be signed.
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (BotoConnectionError, NoCredentialsError, PartialCredentialsError)


class InputError(click.ClickException):
    """Bad input the command could not act on (an unknown rollout, group or instance): exit 4."""

    exit_code = INPUT


class Unreachable(click.ClickException):
    """AWS could not be reached (no connection, a connect timeout, no credentials): exit 5."""

    exit_code = AWS_UNREACHABLE


class Failed(click.ClickException):
    """The command ran and what it did or watched failed: exit 1 (click's own default, said by name)."""

    exit_code = FAILED


def outcome_code(state: str | None) -> int:
    """The exit code of a rollout's state: 0 completed, 1 halted or over without completing, 3 not over yet
    (or never seen): a caller that stopped waiting timed out."""
    if state == RolloutState.COMPLETED:
        return OK
    if state is not None and (state == RolloutState.HALTED or RolloutState(state).finished):
        return FAILED
    return TIMEOUT


def worst_outcome(states: list[str | None]) -> int:
    """The exit code of several rollouts waited for: 0 if every one completed, else 1 if every one is over
    (some halted or failed), else 3 (some still running when the wait gave up)."""
    codes = {outcome_code(state) for state in states}
    return TIMEOUT if TIMEOUT in codes else FAILED if FAILED in codes else OK


def exit_with(code: int) -> NoReturn:
    """End the command with ``code`` (click's own way, so a test runner sees it too)."""
    raise click.exceptions.Exit(code)


class SkynetGroup(click.Group):
    """The root ``skynet`` group: usage errors exit 4, and AWS out of reach exits 5 with one line, not a
    traceback."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        """Parse the root's own options (a usage error there exits 4)."""
        return _mapped(lambda: super(SkynetGroup, self).make_context(info_name, args, parent, **extra))

    def invoke(self, ctx: click.Context) -> Any:
        """Parse and run the subcommand (its usage errors exit 4; AWS out of reach exits 5)."""
        return _mapped(lambda: super(SkynetGroup, self).invoke(ctx))


def _mapped(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except click.UsageError as error:  # BadParameter, NoSuchOption, MissingParameter…
        error.exit_code = INPUT  # type: ignore[misc]  # click declares it per class; this one error's
        raise
    except UNREACHABLE_ERRORS as error:
        raise Unreachable(f"AWS unreachable: {error}") from None
