"""``skynet instance ...``: setting up the host an instance runs on."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def instance() -> None:
    """Set up this host as a Skynet instance."""


@instance.command("install-units")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/systemd/system"),
              show_default=True, help="Where systemd reads unit files.")
@click.option("--root", envvar="SKYNET_ROOT", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/srv/skynet"), show_default=True, help="The instance root (SKYNET_ROOT).")
@click.option("--no-systemctl", is_flag=True, help="Only write the files: no daemon-reload, no enable.")
def install_units_command(unit_dir: Path, root: Path, no_systemctl: bool) -> None:
    """Install skynet-worker.service and skynet-app.service (the app in a unit of its own)."""
    from workers.units import UnitError, install_units

    try:
        written = install_units(unit_dir, root, sys.executable, systemctl=None if no_systemctl else ("systemctl",))
    except (UnitError, OSError) as error:
        raise click.ClickException(str(error)) from error
    for path in written:
        click.echo(str(path))
