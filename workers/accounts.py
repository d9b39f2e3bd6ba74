"""The users an instance runs as, and the folders each of them owns.

Nothing on an instance runs as root that does not need to:

- ``skynet`` runs the worker: it owns the instance root (releases, downloads, its logs), the
  config folder it syncs, and nothing of the system;
- ``skynet-build`` runs every command of a repository's ``skynet.yml``: build steps, lifecycle
  hooks, the health command (``skynet_tasks.build_user``). It writes only the build work trees
  (shared with the worker through its group), so a hostile ``skynet.yml`` cannot touch the
  releases, the deploy keys or the worker. It is a member of the app's group, so a hook reads
  the app's config as the app does: what the build user builds becomes the app's code anyway;
- the config folder is the worker's, its group the app's and setgid, so every file the worker
  syncs into it is the app's group's (``skynet_tasks.config.paths`` decides which files that
  group may read);
- ``www-data`` runs the app: it owns only the folders the app writes (its rendered
  configuration and sockets in ``run/stack``, its logs in ``logs/app``).

Created at first boot, as root, by ``workers.boot``; creating them again changes nothing.
Trusted: the names below (constants) and the instance root from the boot environment.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess  # nosec B404 - useradd with fixed arguments
import sys
from dataclasses import dataclass
from pathlib import Path

WORKER_USER = "skynet"
BUILD_USER = "skynet-build"
APP_USER = "www-data"
NOLOGIN = "/usr/sbin/nologin"
BUILD_MARKER = ".build-user"  # workers.buildrun.MARKER: build steps go to the build user


class AccountError(RuntimeError):
    """A user could not be created, or a folder could not be given to its owner."""


@dataclass(frozen=True)
class Account:
    """A system user: its name, ids and home."""

    name: str
    uid: int
    gid: int
    home: Path

    @classmethod
    def named(cls, name: str) -> Account:
        """The account ``name`` as the password database has it; AccountError if there is none."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise AccountError(f"no user {name!r} on this host (workers.boot creates it)") from None
        return cls(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def ensure_user(name: str, home: Path) -> Account:
    """The system user ``name`` with its own group, created if missing (no login shell, no home made)."""
    try:
        return Account.named(name)
    except AccountError:
        pass
    # --no-log-init: no lastlog/faillog entry, which would be written outside /etc.
    result = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--no-log-init",  # noqa: S603, S607  # nosec B603 B607
                             "--home-dir", str(home), "--shell", NOLOGIN, name],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode not in (0, 9):  # 9: created meanwhile by another boot step
        raise AccountError(f"useradd {name}: {result.stderr.strip()}")
    return Account.named(name)


def ensure_member(user: Account, group: Account) -> None:
    """Add ``user`` to the own group of ``group`` (the worker to the build user's, the build user to the
    app's), if not yet."""
    if user.name in grp.getgrgid(group.gid).gr_mem:
        return
    result = subprocess.run(["usermod", "--append", "--groups", grp.getgrgid(group.gid).gr_name, user.name],  # noqa: S603, S607  # nosec B603 B607
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise AccountError(f"usermod {user.name}: {result.stderr.strip()}")


@dataclass(frozen=True)
class Accounts:
    """The three users of an instance."""

    worker: Account
    build: Account
    app: Account


def ensure_accounts(root: Path) -> Accounts:
    """Create the instance's users if missing; return them."""
    accounts = Accounts(worker=ensure_user(WORKER_USER, root), build=ensure_user(BUILD_USER, root / "build"),
                        app=ensure_user(APP_USER, Path("/var/www")))
    ensure_member(accounts.worker, accounts.build)  # the worker shares the build's work tree through its group
    ensure_member(accounts.build, accounts.app)  # hooks read the app's config through the app's group
    return accounts


def _own(path: Path, owner: Account, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        raise AccountError(f"{path} is a symlink: refusing to give it to {owner.name}")
    os.chown(path, owner.uid, owner.gid)
    path.chmod(mode)


def write_fresh(path: Path, text: str, owner: Account | None = None) -> None:
    """Write ``path`` as a new file (root writing into a folder another user owns): whatever was
    there, a symlink planted to make root write elsewhere included, is removed first, not followed."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        if owner is not None:
            os.fchown(out.fileno(), owner.uid, owner.gid)


def app_folders(root: Path) -> tuple[Path, Path]:
    """The folders the app writes: its run folder (configs, sockets, pids) and its logs."""
    return root / "run" / "stack", root / "logs" / "app"


def prepare_folders(root: Path, config_home: Path, accounts: Accounts) -> None:
    """Give each user exactly the folders it writes (created if missing).

    The worker's folders are made its own only at their top: what is inside was written by
    the worker itself (or by an older root worker, whose files the worker then reads but
    cannot change: a fresh instance has none).
    """
    _own(root, accounts.worker, 0o755)
    for name in ("releases", "downloads", "run", "logs", "agent"):
        _own(root / name, accounts.worker, 0o755)
    # The config folder: the worker's, its group the app's, setgid so that every generation and file the
    # worker writes in it is the app's group's too (the worker is no member of it and needs none). The
    # file's mode decides whether that group reads it: deploy keys stay the worker's alone.
    _own(config_home, accounts.worker, 0o2750)
    os.chown(config_home, accounts.worker.uid, accounts.app.gid)
    config_home.chmod(0o2750)
    # The build folder: the worker's, its group the build user's, setgid so the work trees are too.
    build = root / "build"
    _own(build, accounts.worker, 0o2770)
    os.chown(build, accounts.worker.uid, accounts.build.gid)
    build.chmod(0o2770)
    write_fresh(build / BUILD_MARKER, f"build steps run as {accounts.build.name} (workers/buildrun.py)\n")
    for folder in app_folders(root):
        _own(folder, accounts.app, 0o755)


def main(argv: list[str] | None = None) -> int:
    """``python -m workers.accounts``: create the instance's users (the user data, as root, before it
    admits the worker's user alone to instance metadata); the instance root is ``SKYNET_ROOT``'s, as the
    boot's."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        print("usage: python -m workers.accounts (the instance root from SKYNET_ROOT, else /srv/skynet)",
              file=sys.stderr)
        return 2
    ensure_accounts(Path(os.environ.get("SKYNET_ROOT") or "/srv/skynet"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
