"""Options shared by several commands, with environment-variable fallbacks and up-front validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from skynet_tasks import names

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
