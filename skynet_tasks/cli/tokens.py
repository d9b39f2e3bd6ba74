"""``skynet monitor token``: add, revoke and list the dashboard's named tokens in its token file.

The running dashboard re-reads the file when it changes, so a token added works and a token
revoked is refused from the next request on, without a restart.
"""

from __future__ import annotations

from pathlib import Path

import click

from skynet_tasks.monitor.secretfile import SecretFileError, read_secret_file
from skynet_tasks.monitor.tokens import (
    NamedToken,
    TokenFileError,
    check_name,
    new_secret,
    parse_tokens,
    write_tokens,
)

token_file_option = click.option(
    "--token-file", type=click.Path(dir_okay=False, path_type=Path), envvar="SKYNET_DASHBOARD_TOKEN_FILE",
    required=True, help="The dashboard's token file (created mode 0600 if missing) [SKYNET_DASHBOARD_TOKEN_FILE].")


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # The operator's typing: it ends up in the audit trail and in pages.
    try:
        return check_name(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _read(path: Path) -> tuple[NamedToken, ...]:
    if not path.exists():
        return ()
    try:
        text = read_secret_file(path, "token file")
        if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
            return ()  # every token revoked
        return parse_tokens(text, f"token file {path}")
    except (TokenFileError, SecretFileError) as error:
        raise click.ClickException(str(error)) from None


@click.group("token")
def token() -> None:
    """The dashboard's named tokens: each action records the name of the token that took it."""


@token.command("add")
@token_file_option
@click.argument("name", callback=_name)
@click.option("--read-only", is_flag=True, help="The token may read (with --reads token) but never act.")
def add(token_file: Path, name: str, read_only: bool) -> None:
    """Add a token named NAME and print it (once: only the file keeps it)."""
    tokens = _read(token_file)
    if any(t.name == name for t in tokens):
        raise click.ClickException(f"a token named {name} exists already: revoke it first")
    secret = new_secret()
    write_tokens(token_file, (*tokens, NamedToken(name, secret, writes=not read_only)))
    click.echo(secret)


@token.command("revoke")
@token_file_option
@click.argument("name", callback=_name)
def revoke(token_file: Path, name: str) -> None:
    """Remove the token named NAME: the dashboard refuses it from its next request on."""
    tokens = _read(token_file)
    if not any(t.name == name for t in tokens):
        raise click.ClickException(f"no token named {name} in {token_file}")
    write_tokens(token_file, tuple(t for t in tokens if t.name != name))
    click.echo(f"token {name} revoked")


@token.command("list")
@token_file_option
def list_tokens(token_file: Path) -> None:
    """The names of the tokens, and which may only read (never the tokens themselves)."""
    for named in _read(token_file):
        click.echo(f"{named.name}{'' if named.writes else ' (read-only)'}")
