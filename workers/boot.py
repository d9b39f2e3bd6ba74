"""``python -m workers.boot``: the last step of an instance's first boot, run by its user data.

The user data installs the agent (``workers/user-data.sh``), then hands over here:

1. **Identity.** The instance must know who it is before it does anything: its id and
   private address from instance metadata (IMDSv2), its env and layer from the user data,
   and its maintenance group from the ``maintenance-group`` tag. Without them it refuses to
   start, with a message that says what is missing, and registers nothing.
2. **Settings file.** ``/etc/skynet/env`` keeps what the user data exported (``SKYNET_*``,
   the region, and an endpoint override only where one is set: the local cluster), for the
   worker's service to read at every start.
3. **Users and folders.** The worker's, the build's and the app's users exist
   (``workers.accounts``), each owning the folders it writes.
4. **The worker.** On a host run by systemd, the worker's and the app's units are installed
   (``workers.units``) and the worker is started; elsewhere
   (the local cluster's instances, whose namespaces have no init) the stand-in for the app's
   unit (``workers.appctl``) starts as root, and the worker is started detached in a session of
   its own, its output in ``/srv/skynet/logs/worker.log``, driving the app through the stand-in
   as it drives the unit through ``systemctl`` on EC2.

Trusted: the environment the user data exported and the metadata service (both EC2's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from skynet_tasks.services import USE_SYSTEMD
from skynet_tasks.settings import Settings, SettingsError
from workers import appctl
from workers.accounts import Accounts, ensure_accounts, prepare_folders, write_fresh
from workers.identity import fill_from_ec2
from workers.units import POLKIT_DIR, WORKER_UNIT, install_units

ENV_FILE = Path("/etc/skynet/env")
# The worker (not root) syncs the config: into a folder of its own, not /etc itself. /etc/config,
# where apps read it, is a link to it made once at boot.
CONFIG_HOME = Path("/etc/skynet/config")
CONFIG_LINK = Path("/etc/config")
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


def start_app_service(root: Path, timeout: float = 30.0) -> Path:
    """Start the stand-in for the app's unit (``workers.appctl``) as root; return the folder of its ``systemctl``."""
    home = appctl.control_dir(root)
    home.mkdir(mode=0o750, exist_ok=True)
    socket_path = home / appctl.SOCKET
    socket_path.unlink(missing_ok=True)
    with open(home / "appctl.log", "ab") as out:
        subprocess.Popen([sys.executable, "-m", "workers.appctl", "serve", str(root)], stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=home, start_new_session=True,
                         env={k: v for k, v in os.environ.items() if k in ("PATH", "LANG")})
    bin_dir = home / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "systemctl"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m workers.appctl systemctl --socket {socket_path} "$@"\n')
    shim.chmod(0o755)
    write_fresh(root / USE_SYSTEMD, "the app runs as skynet-app.service (workers.appctl here)\n")
    deadline = time.monotonic() + timeout
    while not socket_path.exists():
        if time.monotonic() > deadline:
            raise BootError(f"the app's service manager did not start: see {home}/appctl.log")
        time.sleep(0.05)
    return bin_dir


def start_worker(environ: Mapping[str, str], root: Path, accounts: Accounts) -> None:
    """Start the worker under systemd where it runs the host, else detached in its own session."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        # the worker's unit, the app's of its own, and the worker's right to restart the app's
        install_units(UNIT_DIR, root, sys.executable, polkit_dir=POLKIT_DIR)
        subprocess.run(["systemctl", "enable", "--now", WORKER_UNIT], check=True, timeout=120)
        return
    bin_dir = start_app_service(root)
    skynet = Path(sys.executable).with_name("skynet")
    worker = accounts.worker
    environment = {**environ, "PATH": f"{bin_dir}:{environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(worker.home),
                   "USER": worker.name, "LOGNAME": worker.name}
    with open(root / "logs" / "worker.log", "ab") as out:  # opened as root, written by the worker
        subprocess.Popen([str(skynet), "worker"], env=environment, stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, cwd=root, start_new_session=True,
                         user=worker.uid, group=worker.gid, extra_groups=[accounts.build.gid])


def trust_local_repo(environ: Mapping[str, str], accounts: Accounts) -> None:
    """Let the worker's git read a repository on this host's disk that another user owns.

    git refuses a repository owned by someone else ("dubious ownership") unless the user's
    own config names it. Only a local path needs it (the local cluster's sample repo, owned
    by whoever made the cluster); a remote URL is fetched, not opened.
    """
    repo = environ.get("SKYNET_REPO", "")
    if not repo.startswith("/") or "\n" in repo:
        return
    write_fresh(accounts.worker.home / ".gitconfig", f"[safe]\n\tdirectory = {repo}\n", accounts.worker)


def link_config(config_dir: Path) -> None:
    """Make ``/etc/config`` (where apps read the config) lead to the worker's ``config_dir``, once."""
    if CONFIG_LINK.is_symlink() or CONFIG_LINK.exists() or config_dir == CONFIG_LINK:
        return
    os.symlink(os.path.relpath(config_dir, CONFIG_LINK.parent), CONFIG_LINK)


def main() -> None:
    """Boot this instance from its user data: check its settings and identity, write them, start the worker."""
    environ = dict(os.environ)
    try:
        Settings.from_env(environ)  # every SKYNET_* variable the user data exported, before metadata is asked
        check_identity(environ)
    except (BootError, SettingsError) as error:
        sys.exit(f"skynet boot: {error}")
    environ.setdefault("SKYNET_CONFIG_DIR", str(CONFIG_HOME / "current"))
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    ENV_FILE.write_text(settings_file(environ))
    ENV_FILE.chmod(0o600)
    root = Path(environ.get("SKYNET_ROOT") or "/srv/skynet")
    accounts = ensure_accounts(root)
    config_dir = Path(environ["SKYNET_CONFIG_DIR"])
    if len(config_dir.parent.parts) < 4:  # its folder is the worker's: never /etc itself
        sys.exit(f"skynet boot: SKYNET_CONFIG_DIR {config_dir} must be in a folder of its own, "
                 f"such as {CONFIG_HOME}/current")
    prepare_folders(root, config_dir.parent, accounts)
    link_config(config_dir)
    trust_local_repo(environ, accounts)
    worker_environ = {**{k: v for k, v in os.environ.items() if not k.startswith(KEPT)},
                      **dict(line.split("=", 1) for line in settings_file(environ).splitlines())}
    start_worker(worker_environ, root, accounts)
    print(f"skynet boot: instance {environ['SKYNET_INSTANCE_ID']} of group {environ['SKYNET_GROUP']} "
          "started its worker")


if __name__ == "__main__":
    main()
