"""Options shared by several commands, with environment-variable fallbacks and up-front validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from celery import Celery

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.cli.exitcodes import InputError
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
