"""Commands from a repository run as the build user (``skynet-build``), not as the worker.

A repository's ``skynet.yml`` is code from whoever can push to it: its build steps, its
lifecycle hooks and its health command must not reach the worker's releases, deploy keys,
credentials files or code. The worker cannot change user itself (its unit has
``NoNewPrivileges``), so it asks the one root party it has:

- on EC2, systemd: ``systemctl start --wait skynet-build@<id>.service``, a template unit whose
  ``User=skynet-build`` is fixed (the worker may start it by the polkit rule in ``workers.units``);
- on the local cluster's instances, the same call answered by ``workers.appctl``, which runs the
  same runner as ``skynet-build``.

A worker process killed during a step (its task's hard time limit, the OOM killer, a restart) leaves
the step's unit running: ``systemctl start --wait`` dies with the worker, the unit does not. Each
request names the worker process that asked (its pid and start time), and the next step of the
instance first stops the units whose worker process is gone (``stop_orphaned_steps``), so that a build
sent again never shares its work tree with a step of the build before; so does the worker's start.

Either way the runner (``python -m workers.buildrun run ROOT ID``, as ``skynet-build``, which calls
``run_request``) reads the request the worker wrote (``ROOT/build/.requests/ID.json``: the
command, its folder, environment and time left), runs it, and writes the output and outcome
beside it for the worker to read.

A build's work tree is shared through the group ``skynet-build``, of which the worker's user is
a member: ``ROOT/build`` is setgid to it, and the tree is made group-writable before the first
step, so the steps may change the checkout and the worker may pack and remove what they wrote.
A hook runs in the release folder, which stays the worker's (0755): the hook reads the release
the ledger's sha256 verified and cannot change it.

Trusted: the worker (it chooses what runs, as on any builder). Not trusted: the command itself,
nor the request file's content as the runner reads it (only the worker and the build user can
write there, and the build user gains nothing by forging its own request).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import subprocess  # nosec B404 - systemctl with fixed arguments
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from skynet_tasks import commands
from skynet_tasks.proctable import process_alive, process_start

MARKER = ".build-user"  # in the build folder: repository commands go to the build user (written at boot)
REQUESTS = ".requests"
BUILD_UNIT = re.compile(r"skynet-build@([0-9a-f]{32})\.service")
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def build_unit(request_id: str) -> str:
    """The unit that runs the request ``request_id``."""
    return f"skynet-build@{request_id}.service"


def uses_build_user(work_root: Path) -> bool:
    """Whether repository commands run as the build user, ``work_root`` being the instance's build
    folder (the boot marked it)."""
    return (work_root / MARKER).exists()


def share_with_build_user(tree: Path) -> None:
    """Make ``tree`` writable by its group (the build user's): folders g+rwxs, files g+rw."""
    for folder, subfolders, files in os.walk(tree):
        for name in (*subfolders, *files):
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            extra = stat.S_IRWXG | stat.S_ISGID if stat.S_ISDIR(mode) else stat.S_IRGRP | stat.S_IWGRP
            path.chmod(stat.S_IMODE(mode) | extra)
    Path(tree).chmod(stat.S_IMODE(Path(tree).stat().st_mode) | stat.S_IRWXG | stat.S_ISGID)


def run_step(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float, log: commands.CommandLog,
             work_root: Path, systemctl: Sequence[str] = ("systemctl",)) -> None:
    """Run one repository command (a build step, a hook, a health command) as the build user where the
    boot set one up under ``work_root``, else as this process; raise ``commands.CommandFailed`` as
    ``commands.run`` does."""
    if not uses_build_user(work_root):
        commands.run(argv, cwd=cwd, env=env, timeout=timeout, log=log)
        return
    requests = work_root / REQUESTS
    requests.mkdir(exist_ok=True)
    requests.chmod(0o2770)  # the runner writes its result here (mkdir's mode is cut by the umask)
    stop_orphaned_steps(requests, log, systemctl)
    request_id = secrets.token_hex(16)
    request = requests / f"{request_id}.json"
    result = requests / f"{request_id}.result"
    owner = [os.getpid(), process_start(os.getpid())]
    request.write_text(json.dumps({"argv": list(argv), "cwd": str(cwd), "env": dict(env), "timeout": timeout,
                                   "owner": owner}))
    request.chmod(0o640)
    try:
        started = subprocess.run([*systemctl, "start", "--wait", build_unit(request_id)],  # noqa: S603  # nosec B603
                                 capture_output=True, text=True, timeout=timeout + 60, check=False)
        try:
            outcome = json.loads(result.read_text())
        except (OSError, ValueError):
            log.note(f"$ {' '.join(argv)}")
            log.note(f"the build user's runner did not report: {started.stderr.strip()}")
            raise commands.CommandFailed(f"{argv[0]}: the build user's runner did not report "
                                         f"({started.stderr.strip() or started.returncode})") from None
        log.lines.extend(str(line) for line in outcome["lines"])
        if outcome["error"]:
            raise commands.CommandFailed(str(outcome["error"]))
    except subprocess.TimeoutExpired:
        raise commands.CommandFailed(f"{' '.join(argv)}: timed out after {timeout:.0f}s") from None
    finally:
        request.unlink(missing_ok=True)
        result.unlink(missing_ok=True)


def stop_orphaned_steps(requests: Path, log: commands.CommandLog, systemctl: Sequence[str]) -> list[str]:
    """Stop the steps whose worker process died while they ran, and forget their requests; their ids.

    Trusted as far as it goes: the request files are the worker's, but the build user may write their
    folder too. A file it forged or swapped names at worst a unit of a step it could make fail anyway,
    and nothing but ``systemctl stop`` of a build unit is run for it.
    """
    stopped = []
    for request in sorted(requests.glob("*.json")):
        if not REQUEST_ID.fullmatch(request.stem):
            continue
        try:
            owner = json.loads(request.read_text()).get("owner")
        except (OSError, ValueError, AttributeError):
            continue  # gone since, or not a request
        if not (isinstance(owner, list) and len(owner) == 2 and all(isinstance(n, int) for n in owner)):
            continue  # written by an agent that did not name its process: cannot tell
        pid, started = owner
        if process_alive(pid) and process_start(pid) == started:
            continue  # its worker process still waits for it
        unit = build_unit(request.stem)
        stop = subprocess.run([*systemctl, "stop", unit], capture_output=True, text=True,  # noqa: S603  # nosec B603
                              timeout=120, check=False)
        if stop.returncode == 0:
            log.note(f"stopped {unit}, left running by worker process {pid}, which died")
        else:
            log.note(f"could not stop {unit}, left running by worker process {pid}: {stop.stderr.strip()}")
        request.unlink(missing_ok=True)
        request.with_suffix(".result").unlink(missing_ok=True)
        stopped.append(request.stem)
    return stopped


def stop_orphaned_steps_at_start(work_root: Path, systemctl: Sequence[str] = ("systemctl",)) -> list[str]:
    """At a worker's start, stop the steps a killed worker process of this instance left running; what was
    done, a line each. (Its next step would stop them too, but may come only with the next rollout.)"""
    requests = work_root / REQUESTS
    if not uses_build_user(work_root) or not requests.is_dir():
        return []
    notes = commands.CommandLog()
    stop_orphaned_steps(requests, notes, systemctl)
    return notes.lines


def run_request(root: Path, request_id: str) -> int:
    """Run the request ``request_id`` (as whoever runs this: the build user); write its outcome; 0 if it passed."""
    if not REQUEST_ID.fullmatch(request_id):
        print(f"not a request id: {request_id!r}", file=sys.stderr)
        return 2
    requests = root / "build" / REQUESTS
    data = json.loads((requests / f"{request_id}.json").read_text())
    log = commands.CommandLog()
    error = None
    try:
        commands.run([str(a) for a in data["argv"]], cwd=Path(data["cwd"]), env={str(k): str(v) for k, v in
                     data["env"].items()}, timeout=float(data["timeout"]), log=log)
    except commands.CommandFailed as failed:
        error = str(failed)
    result = requests / f"{request_id}.result"
    temp = result.with_suffix(".tmp")
    temp.write_text(json.dumps({"lines": log.lines, "error": error}))
    temp.replace(result)
    return 0 if error is None else 1
