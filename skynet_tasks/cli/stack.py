"""``skynet stack render`` and ``skynet stack validate``: the CloudFormation stacks in cloudformation/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from skynet_tasks.cli.extras import require_extra
from skynet_tasks.stacks.cfn import TEMPLATES, StackError, render


@click.group()
def stack() -> None:
    """The php-nginx CloudFormation stack."""


@stack.command("render")
@click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=TEMPLATES / "php-nginx.yaml", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter value (repeatable).")
def render_command(template: Path, params: tuple[str, ...]) -> None:
    """Print the template as JSON with your parameters filled in as defaults."""
    values = {}
    for param in params:
        name, sep, value = param.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{param!r} is not NAME=VALUE", param_hint="--param")
        values[name] = value
    try:
        click.echo(render(template, values))
    except StackError as error:
        raise click.ClickException(str(error)) from None


@stack.command("validate")
@click.option("--templates", type=click.Path(exists=True, file_okay=False, path_type=Path), default=TEMPLATES,
              show_default=True)
def validate(templates: Path) -> None:
    """Run cfn-lint on every template."""
    require_extra("stack", "skynet stack validate")
    # cfn-lint's console script sits beside this interpreter even when that venv is not on PATH.
    lint = shutil.which("cfn-lint") or str(Path(sys.executable).parent / "cfn-lint")
    files = sorted(str(p) for p in templates.glob("*.yaml"))
    result = subprocess.run([lint, *files], check=False)
    if result.returncode == 0:
        click.echo(f"{len(files)} template(s) pass cfn-lint")
    sys.exit(result.returncode)
