"""Options shared by several commands, with environment-variable fallbacks and up-front validation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import click
from celery import Celery

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.cli.exitcodes import InputError
from skynet_tasks.policy import CANARY_MODES, ON_FAILURE, PolicyError
from skynet_tasks.policy_overrides import OVERRIDABLE, parse_overrides, typed_ramp
from skynet_tasks.resources import EnvResources, resolve
from skynet_tasks.settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Startup:
    """What the ``skynet`` command built at its start: its settings and, on first use, its Celery app."""

    settings: Settings
    _celery: Celery | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> Startup:
        """This process's settings, or a click error naming the bad variable (nothing is sent or written)."""
        try:
            return cls(Settings.from_env())
        except SettingsError as error:
            raise InputError(str(error)) from None

    def celery(self) -> Celery:
        """The Celery app to send with, configured from these settings."""
        if self._celery is None:
            from skynet_tasks.app import create_app

            self._celery = create_app(self.settings)
        return self._celery


def startup() -> Startup:
    """The running command's Startup (built by the ``skynet`` group; built here for a command invoked alone)."""
    ctx = click.get_current_context()
    found = ctx.find_object(Startup)
    if found is None:
        found = Startup.from_env()
        ctx.find_root().obj = found
    return found


def _name_part(kind: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return value
        try:
            return names.check_name_part(kind, value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return check


def env_option(func: F) -> F:
    """The ``--env`` option (SKYNET_ENV), checked as a name part."""
    return click.option("--env", "env", envvar="SKYNET_ENV", default="local", show_default=True,
                        callback=_name_part("env"), help="Environment (SKYNET_ENV).")(func)


def layer_option(func: F) -> F:
    """The ``--layer`` option (SKYNET_LAYER), checked as a name part."""
    return click.option("--layer", envvar="SKYNET_LAYER", default="api", show_default=True,
                        callback=_name_part("layer"), help="Layer (SKYNET_LAYER).")(func)


def group_option(func: F) -> F:
    """The ``--group`` option (SKYNET_GROUP), checked as a name part."""
    return click.option("--group", envvar="SKYNET_GROUP", default=None, callback=_name_part("group"),
                        help="Maintenance group [default: <env>-<layer>] (SKYNET_GROUP).")(func)


def json_option(func: F) -> F:
    """The ``--json`` flag: print JSON instead of text (each command's schema: docs/operations.md)."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def env_resources(aws: Aws, env: str) -> EnvResources:
    """The names of ``env``'s resources; SKYNET_CONFIG_BUCKET/SKYNET_REPO_BUCKET count only for SKYNET_ENV's env."""
    try:
        return resolve(aws, env, startup().settings)
    except ValueError as error:  # SettingsError and ResourceError are ValueErrors
        raise InputError(str(error)) from None


# ``skynet deploy``'s policy overrides: each flag is the policy key it overrides (``policy_overrides``).
POLICY_FLAGS = {key: "--" + key.replace("_", "-") for key in OVERRIDABLE if key != "windows"} | {"windows": "--window"}
_POLICY_OPTIONS = (
    click.option("--max-parallel", metavar="N|P%[,...]",
                 help="This rollout's batch size instead of skynet.yml's: a count, a percentage of the group, "
                      "or a ramp such as 1,2,25% (the last size repeats). The canary still goes alone."),
    click.option("--min-healthy-time", metavar="DURATION",
                 help="This rollout's bake time instead of skynet.yml's: how long each updated instance keeps "
                      "passing its health check before the next one's turn (30, 30s, 2m; 0: no bake)."),
    click.option("--progress-deadline", metavar="DURATION",
                 help="This rollout's progress deadline instead of skynet.yml's: it halts when no instance "
                      "became healthy in it for this long (10m; 0: none)."),
    click.option("--on-failure", type=click.Choice(ON_FAILURE),
                 help="What a failure after the canary does to this rollout instead of skynet.yml's: halt, or "
                      "halt and revert the instances that moved to the group's previous release (the canary last)."),
    click.option("--canary", type=click.Choice(CANARY_MODES),
                 help="This rollout's canary mode instead of skynet.yml's: manual waits after the canary's success "
                      "for skynet rollout promote ID (or the dashboard's button)."),
    click.option("--promote-timeout", metavar="DURATION",
                 help="With --canary manual (or skynet.yml's): abort the rollout if nobody promotes it in this "
                      "long (1h, 1d; at most 30 days)."),
    click.option("--window", "windows", multiple=True, metavar="'DAYS HH:MM-HH:MM [TZ]'",
                 help="This rollout's maintenance windows instead of skynet.yml's (repeatable): days, hours and an "
                      "IANA time zone (UTC by default), such as 'mon-fri 09:00-17:00 Europe/Paris'."),
)


def policy_options(func: F) -> F:
    """``skynet deploy``'s policy overrides as options, given to ``func`` as one ``overrides`` argument
    (RolloutOverrides), checked before ``func`` runs: a bad one is a usage error naming the flag and the rule."""

    @functools.wraps(func)
    def with_overrides(*args: Any, **kwargs: Any) -> Any:
        typed = {key: kwargs.pop(key) for key in OVERRIDABLE}  # the operator's typing, checked as skynet.yml's is
        typed["max_parallel"] = typed_ramp(typed["max_parallel"])
        typed["windows"] = list(typed["windows"]) or None
        try:
            kwargs["overrides"] = parse_overrides(typed, "deploy", POLICY_FLAGS)
        except PolicyError as error:
            raise click.BadParameter(str(error)) from None
        return func(*args, **kwargs)

    wrapped: Any = with_overrides
    for option in reversed(_POLICY_OPTIONS):
        wrapped = option(wrapped)
    return cast(F, wrapped)
