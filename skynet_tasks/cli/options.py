"""Options shared by several commands, with environment-variable fallbacks and up-front validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.resources import EnvResources, resolve
from skynet_tasks.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


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
    return click.option("--env", "env", envvar="SKYNET_ENV", default="local", show_default=True,
                        callback=_name_part("env"), help="Environment (SKYNET_ENV).")(func)


def layer_option(func: F) -> F:
    return click.option("--layer", envvar="SKYNET_LAYER", default="api", show_default=True,
                        callback=_name_part("layer"), help="Layer (SKYNET_LAYER).")(func)


def group_option(func: F) -> F:
    return click.option("--group", envvar="SKYNET_GROUP", default=None, callback=_name_part("group"),
                        help="Maintenance group [default: <env>-<layer>] (SKYNET_GROUP).")(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def env_resources(aws: Aws, env: str) -> EnvResources:
    """The names of ``env``'s resources; SKYNET_CONFIG_BUCKET/SKYNET_REPO_BUCKET count only for SKYNET_ENV's env."""
    try:
        return resolve(aws, env, Settings.from_env())
    except ValueError as error:  # SettingsError and ResourceError are ValueErrors
        raise click.ClickException(str(error)) from None
