"""Installing the systemd units of an EC2 instance: the worker's and the app's.

``skynet-worker.service`` (user ``skynet``) and ``skynet-build@.service`` (one build step, user
``skynet-build``) are copied as shipped; ``skynet-app.service``
(user ``www-data``) is rendered with the agent's Python and the instance root. Given a
polkit folder, a rule lets the worker's user start, stop and restart the app's unit and start
build steps, and nothing else (``POLKIT_RULE``): the worker runs with ``NoNewPrivileges``, so sudo could not serve.
Then the instance root is marked
(``ROOT/use-systemd``) so the worker drives the app through ``systemctl``
(``skynet_tasks.services.SystemdServices``) rather than a supervisor of its own,
systemd rereads its units and the app's unit is enabled (it starts at boot on the
release last installed; before any release it is skipped).

Run by the first boot (``skynet instance install-units``), as root.
"""

from __future__ import annotations

import logging
import re
import string
import subprocess  # nosec B404 - systemctl with fixed arguments
from collections.abc import Sequence
from pathlib import Path

from skynet_tasks.services import USE_SYSTEMD

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
WORKER_UNIT = "skynet-worker.service"
BUILD_UNIT = "skynet-build@.service"
APP_UNIT = "skynet-app.service"
# systemd splits ExecStart on spaces and expands % and $: only plain absolute paths go in.
PLAIN_PATH = re.compile(r"/[A-Za-z0-9._/+-]*")


POLKIT_DIR = Path("/etc/polkit-1/rules.d")
POLKIT_FILE = "50-skynet-worker.rules"
POLKIT_RULE = """\
// Skynet (workers/units.py): the worker's user may start, stop and restart the app's unit, and start
// a build step's (whose User= is fixed to skynet-build) or stop one its killed process left running,
// nothing else.
polkit.addRule(function (action, subject) {
    if (action.id == "org.freedesktop.systemd1.manage-units" &&
        subject.user == "skynet" &&
        ((action.lookup("unit") == "skynet-app.service" &&
          ["start", "stop", "restart"].indexOf(action.lookup("verb")) >= 0) ||
         (/^skynet-build@[0-9a-f]{32}\\.service$/.test(action.lookup("unit")) &&
          ["start", "stop"].indexOf(action.lookup("verb")) >= 0))) {
        return polkit.Result.YES;
    }
});
"""


class UnitError(ValueError):
    """A path that cannot go into a unit file, or a systemctl call that failed."""


def _plain(path: Path | str, what: str) -> str:
    text = str(path)
    if not PLAIN_PATH.fullmatch(text) or "/../" in f"{text}/":
        raise UnitError(f"{what} {text!r}: only absolute paths of letters, digits, '.', '_', '+', '-' and '/'")
    return text


def render_app_unit(python: Path | str, root: Path | str) -> str:
    """The text of ``skynet-app.service`` for the agent's ``python`` and the instance ``root``."""
    template = string.Template((HERE / APP_UNIT).read_text())
    return template.substitute(python=_plain(python, "the Python"), root=_plain(root, "the instance root"))


def install_units(unit_dir: Path, root: Path, python: Path | str,
                  systemctl: Sequence[str] | None = ("systemctl",), polkit_dir: Path | None = None) -> list[Path]:
    """Write both units into ``unit_dir``, mark ``root`` for systemd, reload systemd and enable the app's unit.

    With ``polkit_dir`` (``POLKIT_DIR`` on an instance), also the rule that lets the worker
    restart the app's unit. ``systemctl=None`` only writes the files. Returns the unit files written.
    """
    app_unit = render_app_unit(python, root)  # checked before anything is written
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in ((WORKER_UNIT, (HERE / WORKER_UNIT).read_text()), (APP_UNIT, app_unit),
                       (BUILD_UNIT, (HERE / BUILD_UNIT).read_text())):
        temp = unit_dir / f".{name}.tmp"
        temp.write_text(text)
        temp.replace(unit_dir / name)
        written.append(unit_dir / name)
    if polkit_dir is not None:
        polkit_dir.mkdir(parents=True, exist_ok=True)
        (polkit_dir / POLKIT_FILE).write_text(POLKIT_RULE)
    root.mkdir(parents=True, exist_ok=True)
    (root / USE_SYSTEMD).write_text("the app runs as skynet-app.service\n")
    if systemctl is not None:
        for args in (("daemon-reload",), ("enable", APP_UNIT)):
            result = subprocess.run([*systemctl, *args], capture_output=True, text=True, timeout=60, check=False)  # noqa: S603  # nosec B603
            if result.returncode != 0:
                raise UnitError(f"systemctl {' '.join(args)}: {result.stderr.strip()}")
    log.info("installed %s; the app runs as %s", ", ".join(str(p) for p in written), APP_UNIT)
    return written
