"""``skynet stack render``, ``validate`` and ``deploy``: the CloudFormation stacks in cloudformation/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from skynet_tasks.cli.exitcodes import FAILED, OK, exit_with
from skynet_tasks.cli.extras import require_extra
from skynet_tasks.cli.options import env_option
from skynet_tasks.stacks import StackError
from skynet_tasks.stacks.cfn import TEMPLATES, render


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
    # cfn-lint's own codes (2 errors, 4 warnings, 8 notes, added up) would collide with Skynet's.
    exit_with(OK if result.returncode == 0 else FAILED)


@stack.command("deploy")
@env_option
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter value (repeatable).")
@click.option("--stack-name", default=None, help="Stack name [default: skynet-<env>].")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The agent wheel new instances boot [default: built from this checkout].")
@click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=TEMPLATES / "php-nginx.yaml", show_default=True)
def deploy_command(env: str, params: tuple[str, ...], stack_name: str | None, wheel: Path | None,
                   template: Path) -> None:
    """Check the parameters, upload the agent wheel to the stack's repo bucket, create or update the stack."""
    from skynet_tasks.aws import Aws
    from skynet_tasks.stacks.deploy import deploy_stack, stack_name_for
    from skynet_tasks.stacks.parameters import parse_assignments

    try:
        values = parse_assignments(params)
        if values.setdefault("Env", env) != env:
            raise StackError(f"--param Env={values['Env']} contradicts --env {env}")
        aws = Aws()
        name = stack_name or stack_name_for(env)
        result = deploy_stack(aws.client("cloudformation"), aws.s3, template, name, values, wheel)
    except StackError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"stack {result.stack_name} {result.action}; new instances boot "
               f"s3://{result.bucket}/{result.wheel.key} (sha256 {result.wheel.sha256})")
