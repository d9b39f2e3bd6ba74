"""``python -m skynet_tasks.stacks.run RECIPE``: the app service of a stack recipe.

Run by the installer as the release's service (cwd ``ROOT/current``, environment
``PORT``, ``SKYNET_ROOT``, ``SKYNET_RELEASE``, …). It renders the recipe's templates
into ``ROOT/run/stack/``, validates the nginx configuration (``nginx -t``), then runs
the recipe's processes in the foreground and stops them all when it is stopped
(SIGTERM) or when any of them exits, so that the installer sees one service.

Trusted: the worker that starts it. Still, every value that reaches a template is
checked first (a port number, an IP address, a hex release, plain paths), since a
stray ``;`` or brace would change what nginx or PHP-FPM runs.
"""

from __future__ import annotations

import getpass
import grp
import os
import re
import signal
import subprocess  # nosec B404 - fixed binaries and arguments
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from skynet_tasks import names
from skynet_tasks.addresses import ip_address
from skynet_tasks.settings import Settings, process_environment
from skynet_tasks.stacks.recipes import HEALTH_PATH, recipe

SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
NGINX = "/usr/sbin/nginx"


class RecipeError(RuntimeError):
    """A stack recipe cannot run: a value in its environment is unsafe or missing, or a process failed."""


@dataclass(frozen=True)
class StackPlaces:
    """Where a recipe's app lives: the current release, the run folder, the logs."""

    current: Path  # ROOT/current, the symlink the installer switches
    run: Path
    logs: Path

    @classmethod
    def from_environment(cls, environ: dict[str, str]) -> StackPlaces:
        """The places under ``SKYNET_ROOT`` (default /srv/skynet)."""
        root = Path(environ.get("SKYNET_ROOT") or "/srv/skynet")
        # The two folders the app's user owns (workers.accounts.app_folders): it writes nothing else.
        return cls(current=root / "current", run=root / "run" / "stack", logs=root / "logs" / "app")


def _checked_path(value: Path, what: str) -> str:
    text = str(value)
    if not SAFE_PATH.fullmatch(text) or "/../" in f"{text}/":
        raise RecipeError(f"{what} {text!r}: only absolute paths of letters, digits, '.', '_', '-' and '/'")
    return text


def template_values(environ: dict[str, str], places: StackPlaces) -> dict[str, object]:
    """What the templates see, each value checked."""
    try:
        port = int(environ["PORT"])
        address = str(ip_address(environ.get("SKYNET_ADDRESS") or "127.0.0.1"))
    except (KeyError, ValueError) as error:
        raise RecipeError(f"PORT and SKYNET_ADDRESS must be a port number and an IP address: {error}") from None
    if not 1 <= port <= 65535:
        raise RecipeError(f"PORT {port} is out of range")
    release = environ.get("SKYNET_RELEASE", "")
    if not names.SHA.match(release):
        raise RecipeError(f"SKYNET_RELEASE {release!r} is not a commit sha")
    user = environ.get("SKYNET_STACK_USER") or getpass.getuser()
    if not SAFE_NAME.fullmatch(user):
        raise RecipeError(f"SKYNET_STACK_USER {user!r} is not a user name")
    docroot = "public" if (places.current / "public").is_dir() else "."
    return {
        "port": port, "address": address, "release": release, "user": user,
        "group": grp.getgrgid(os.getgid()).gr_name if user == getpass.getuser() else user,
        "instance": environ.get("SKYNET_INSTANCE_ID", "") if SAFE_NAME.fullmatch(
            environ.get("SKYNET_INSTANCE_ID", "") or "-") else "",
        "config_dir": _checked_path(Path(environ.get("SKYNET_CONFIG_DIR") or "/etc/config"), "SKYNET_CONFIG_DIR"),
        "current": _checked_path(places.current, "the release link"), "docroot": docroot,
        "run": _checked_path(places.run, "the run folder"), "logs": _checked_path(places.logs, "the log folder"),
        "health_path": HEALTH_PATH, "as_root": os.geteuid() == 0,
    }


def render(name: str, values: dict[str, object], places: StackPlaces) -> dict[str, Path]:
    """Render the recipe's templates into the run folder; return them by name (without .j2)."""
    places.run.mkdir(parents=True, exist_ok=True)
    (places.run / "tmp").mkdir(exist_ok=True)
    places.logs.mkdir(parents=True, exist_ok=True)
    rendered: dict[str, Path] = {}
    if not recipe(name).templates:
        return rendered
    templates = Environment(loader=PackageLoader("skynet_tasks.stacks", f"templates/{name}"),
                            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)  # noqa: S701  # nosec B701 - nginx/PHP-FPM configs, values checked above
    for template in recipe(name).templates:
        target = places.run / template.removesuffix(".j2")
        temp = target.with_suffix(target.suffix + ".tmp")
        temp.write_text(templates.get_template(template).render(**values))
        os.replace(temp, target)
        rendered[target.name] = target
    return rendered


def php_fpm_binary() -> str:
    """The path of the newest PHP-FPM installed; RecipeError if there is none."""
    found = sorted(Path("/usr/sbin").glob("php-fpm*"))
    if not found:
        raise RecipeError("PHP-FPM is not installed (Debian: apt-get install php-fpm)")
    return str(found[-1])


def processes(name: str, files: dict[str, Path], values: dict[str, object]) -> list[list[str]]:
    """The foreground commands of a recipe, after validating their configuration."""
    if name in ("php-nginx", "static"):
        nginx = [NGINX, "-c", str(files["nginx.conf"]), "-p", str(values["run"]), "-e",
                 f"{values['logs']}/nginx-error.log"]
        check = subprocess.run([*nginx, "-t", "-q"], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603  # nosec B603
        if check.returncode != 0:
            raise RecipeError(f"nginx -t refused the rendered configuration: {check.stderr.strip()}")
        commands = [[*nginx, "-g", "daemon off;"]]
        if name == "php-nginx":
            fpm = [php_fpm_binary(), "--nodaemonize", "--fpm-config", str(files["php-fpm.conf"])]
            if values["as_root"]:
                # Only where the whole app runs as root by choice: the plain local cluster of a root
                # developer. On EC2 and the stack-built cluster the app is www-data (docs/installing.md).
                fpm.append("--allow-to-run-as-root")
            commands.insert(0, fpm)
        return commands
    if name == "python":
        app = "wsgi:application" if (Path(str(values["current"])) / "wsgi.py").exists() else "app:app"
        return [[sys.executable, "-m", "gunicorn", "--bind", f"{values['address']}:{values['port']}",
                 "--workers", "2", "--chdir", str(values["current"]), "--access-logfile", "-", app]]
    raise RecipeError(f"recipe {name} has no processes")


def run(name: str, environ: dict[str, str]) -> int:
    """Render the recipe's files and run its processes until one exits or a signal comes; return the exit code."""
    places = StackPlaces.from_environment(environ)
    values = template_values(environ, places)
    if name == "php-nginx":
        (places.run / "php-fpm.sock").unlink(missing_ok=True)  # left by a killed PHP-FPM
    files = render(name, values, places)
    commands = processes(name, files, values)
    children = [subprocess.Popen(command) for command in commands]  # noqa: S603  # nosec B603
    stopping = threading.Event()  # asked to stop (SIGTERM): a clean exit, not a failure

    def stop_children() -> None:
        for child, command in zip(children, commands, strict=True):
            if child.poll() is None:  # nginx stops gracefully on QUIT, the others on TERM
                child.send_signal(signal.SIGQUIT if command[0] == NGINX else signal.SIGTERM)

    def on_signal(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Wait for the first child to exit: then the service is down, whatever the others do.
    while not stopping.is_set() and all(child.poll() is None for child in children):
        stopping.wait(0.2)
    stop_children()
    codes = []
    for child in children:
        try:
            codes.append(child.wait(15))
        except subprocess.TimeoutExpired:
            child.kill()
            codes.append(child.wait())
    return 0 if stopping.is_set() and all(code in (0, -signal.SIGTERM, -signal.SIGQUIT) for code in codes) else 1


def main() -> None:
    """``python -m skynet_tasks.stacks.run RECIPE``: run the recipe as the app."""
    if len(sys.argv) != 2:
        sys.exit("usage: python -m skynet_tasks.stacks.run RECIPE")
    try:
        Settings.from_env()  # the app's environment, as Skynet gave it: no unknown SKYNET_* name, no bad value
        sys.exit(run(sys.argv[1], process_environment()))  # the app's variables: template_values checks each
    except (RecipeError, LookupError, ValueError, OSError) as error:  # SettingsError is a ValueError
        sys.exit(f"stack {sys.argv[1]}: {error}")


if __name__ == "__main__":
    main()
