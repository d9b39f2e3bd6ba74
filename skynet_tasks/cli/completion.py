"""Shell completion of group, rollout and instance ids, read from the env's ledger and registry.

Enabled through click's completion variable (docs/operations.md, "Shell completion"). A completion runs
at every Tab, so it asks AWS once, briefly (one attempt, a one-second connect timeout), and fails
silently: without AWS, credentials or tables there is simply nothing to offer.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import boto3
import click
from botocore.config import Config
from click.shell_completion import CompletionItem

from skynet_tasks import names
from skynet_tasks.ledger import Ledger
from skynet_tasks.registry import Registry

QUICK = Config(connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1, "mode": "standard"})
RECENT_ROLLOUTS = 20


def _env(ctx: click.Context) -> str:
    return str(ctx.params.get("env") or os.environ.get("SKYNET_ENV") or "local")


def _dynamodb() -> object:
    return boto3.session.Session().client("dynamodb", config=QUICK)


def _quietly(find: Callable[[click.Context], list[str]]) -> Callable[[click.Context, click.Parameter, str],
                                                                      list[CompletionItem]]:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            found = find(ctx)
        except Exception:  # noqa: BLE001 - a completion must never print a traceback into the shell
            return []
        return [CompletionItem(value) for value in found if value.startswith(incomplete)]
    return complete


def _groups(ctx: click.Context) -> list[str]:
    return Ledger(_dynamodb(), names.state_table(_env(ctx))).list_groups()


def _rollouts(ctx: click.Context) -> list[str]:
    ledger = Ledger(_dynamodb(), names.state_table(_env(ctx)))
    group = ctx.params.get("group")
    groups = [group] if group else ledger.list_groups()
    return [r for g in groups for r in reversed(ledger.recent_rollouts(g, RECENT_ROLLOUTS))]


def _instances(ctx: click.Context) -> list[str]:
    env = _env(ctx)
    return sorted(e.instance_id for e in Registry(_dynamodb(), names.endpoints_table(env)).endpoints(env))


complete_groups = _quietly(_groups)
complete_rollouts = _quietly(_rollouts)
complete_instances = _quietly(_instances)
