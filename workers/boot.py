"""``python -m workers.boot``: the last step of an instance's first boot, run by its user data.

The user data installs the agent (``workers/user-data.sh``), then hands over here:

1. **Identity.** The instance must know who it is before it does anything: its id and
   private address from instance metadata (IMDSv2), its env and layer from the user data,
   and its maintenance group from the ``maintenance-group`` tag. Without them it refuses to
   start, with a message that says what is missing, and registers nothing.
2. **Settings file.** ``/etc/skynet/env`` keeps what the user data exported (``SKYNET_*``,
   the region, and an endpoint override only where one is set: the local cluster), for the
   worker's service to read at every start.
3. **The worker.** On a host run by systemd, the worker's and the app's units are installed
   (``workers.units``) and the worker is started; elsewhere
   (the local cluster's instances, whose namespaces have no init) the worker is started the
   same way, detached in a session of its own, its output in ``/srv/skynet/logs/worker.log``.

Trusted: the environment the user data exported and the metadata service (both EC2's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from skynet_tasks.settings import Settings, SettingsError
from workers.identity import fill_from_ec2
from workers.units import WORKER_UNIT, install_units

ENV_FILE = Path("/etc/skynet/env")
UNIT_DIR = Path("/etc/systemd/system")
# What the user data exports and the worker reads; nothing else of the boot environment is kept.
KEPT = ("SKYNET_", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
REQUIRED = ("SKYNET_ENV", "SKYNET_LAYER", "SKYNET_REPO", "SKYNET_CONFIG_BUCKET", "SKYNET_REPO_BUCKET")


class BootError(RuntimeError):
    """The instance cannot start: its identity or its settings are missing."""


def check_identity(environ: MutableMapping[str, str]) -> None:
    """Fill the instance's identity from metadata; raise BootError naming what is missing."""
    missing = [name for name in REQUIRED if not environ.get(name)]
    if missing:
        raise BootError(f"the user data did not export {', '.join(missing)}: is this a Skynet launch template?")
    if not fill_from_ec2(environ):
        raise BootError("no instance identity: the instance metadata service (IMDSv2 at 169.254.169.254) "
                        "did not answer with an instance id")
    if not environ.get("SKYNET_GROUP"):
        raise BootError("the instance has no maintenance-group tag in its metadata: the launch template must "
                        "enable InstanceMetadataTags and the auto scaling group must propagate the tag")


def settings_file(environ: Mapping[str, str]) -> str:
    """The worker's settings as an EnvironmentFile: the boot variables Skynet reads, one per line.

    The identity filled from metadata is left out on purpose: the worker reads it from
    metadata again at each start, so a stopped-and-started instance never keeps a stale one.
    """
    identity = ("SKYNET_INSTANCE_ID", "SKYNET_ADDRESS", "SKYNET_GROUP")
    lines = [f"{name}={value}" for name, value in sorted(environ.items())
             if name.startswith(KEPT) and name not in identity and "\n" not in value]
    return "\n".join(lines) + "\n"


def start_worker(environ: Mapping[str, str], root: Path) -> None:
    """Start the worker under systemd where it runs the host, else detached in its own session."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        install_units(UNIT_DIR, root, sys.executable)  # the worker's unit, and the app's of its own
        subprocess.run(["systemctl", "enable", "--now", WORKER_UNIT], check=True, timeout=120)
        return
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    skynet = Path(sys.executable).with_name("skynet")
    with open(logs / "worker.log", "ab") as out:
        subprocess.Popen([str(skynet), "worker"], env=dict(environ), stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, cwd=root, start_new_session=True)


def main() -> None:
    """Boot this instance from its user data: check its settings and identity, write them, start the worker."""
    environ = dict(os.environ)
    try:
        Settings.from_env(environ)  # every SKYNET_* variable the user data exported, before metadata is asked
        check_identity(environ)
    except (BootError, SettingsError) as error:
        sys.exit(f"skynet boot: {error}")
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    ENV_FILE.write_text(settings_file(environ))
    ENV_FILE.chmod(0o600)
    root = Path(environ.get("SKYNET_ROOT") or "/srv/skynet")
    root.mkdir(parents=True, exist_ok=True)
    worker_environ = {**{k: v for k, v in os.environ.items() if not k.startswith(KEPT)},
                      **dict(line.split("=", 1) for line in settings_file(environ).splitlines())}
    start_worker(worker_environ, root)
    print(f"skynet boot: instance {environ['SKYNET_INSTANCE_ID']} of group {environ['SKYNET_GROUP']} "
          "started its worker")


if __name__ == "__main__":
    main()
