"""``skynet-app.service`` where no systemd runs the host: the local cluster's instances.

On EC2, systemd (root) runs the app's unit as ``www-data`` and the worker (``skynet``) may
only ask it to restart, stop or report that one unit. An instance of the local cluster has no
init, so this module plays both parts of that, over a Unix socket:

- ``python -m workers.appctl serve ROOT`` runs as root, started at boot by ``workers.boot``:
  it starts the app of ``ROOT/run/app.json`` as ``www-data`` under the supervisor
  (``skynet_tasks.supervisor``) when asked, and answers nothing but the four requests below,
  and only to root and the worker's user (the socket's mode, and its peer's credentials);
- ``python -m workers.appctl systemctl ARGS...`` is what the worker runs as ``systemctl``
  (``skynet_tasks.services.SystemdServices``): exactly the calls it makes on the app's unit,
  and ``start --wait skynet-build@ID.service``, which runs one repository command's runner
  (``workers.buildrun``: a build step, a lifecycle hook, a health command) as ``skynet-build``,
  with the groups the group database gives it, as the template unit's ``User=`` does on EC2, and
  ``stop`` of such a unit (a step whose worker process died: ``skynet_tasks.build_user``).

Its own files (the socket, the supervisor's pid files, the app's log) are in a folder only
root writes (``control_dir``), so the worker cannot point root at a pid or a file of its choosing.
Trusted: root, and the worker's user for what it may ask. Not trusted: the app's specification,
beyond what it says to run as ``www-data`` (exactly what the worker may choose on EC2 too).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import subprocess  # nosec B404 - the build runner, fixed arguments
import sys
import threading
from pathlib import Path

from skynet_tasks.appspec import AppSpecError, read_spec
from skynet_tasks.build_user import BUILD_UNIT, REQUEST_ID, build_unit
from skynet_tasks.services import SPEC_FILE, ProcessServices, ServiceError
from workers.accounts import APP_USER, Account

log = logging.getLogger(__name__)

APP_UNIT = "skynet-app.service"
REQUESTS = ("restart", "stop", "is-active", "main-pid")
SOCKET = "appctl.sock"
NOT_FOUND = 5  # systemctl's exit status for a unit it does not know
INACTIVE = 3  # systemctl is-active's for a unit that does not run


def control_dir(root: Path) -> Path:
    """The folder of the stand-in's own files, beside the instance root (``/srv/skynet-appctl``)."""
    return root.with_name(f"{root.name}-appctl")


def answer(request: str, root: Path, services: ProcessServices) -> tuple[int, str]:
    """What the stand-in answers to one request: a systemctl exit status and its output."""
    if request == "restart":
        try:
            spec = read_spec(root / "run" / SPEC_FILE)
            services.restart(spec.command, spec.cwd, spec.env)
        except (AppSpecError, ServiceError, OSError) as error:
            return 1, f"Job for {APP_UNIT} failed: {error}"
        return 0, ""
    if request == "stop":
        services.stop()
        return 0, ""
    if request == "is-active":
        return (0, "active") if services.running() else (INACTIVE, "inactive")
    if request == "main-pid":
        return 0, str(services.main_pid() or 0)
    return 1, f"unknown request {request!r}"


# The build runners running, by request id: ``systemctl stop skynet-build@ID.service`` stops one.
_RUNNERS: dict[str, subprocess.Popen[str]] = {}
_RUNNERS_LOCK = threading.Lock()


def run_build(root: Path, request_id: str, build: Account, timeout: float = 3600.0) -> tuple[int, str]:
    """Run the build user's runner for the request ``request_id`` (``skynet-build@ID.service``)."""
    if not REQUEST_ID.fullmatch(request_id):
        return 1, f"not a build request: {request_id!r}"
    # systemd's User= gives a unit the user's supplementary groups (initgroups): the app's group among
    # them (workers.accounts), through which a hook reads the app's config.
    groups = [gid for gid in os.getgrouplist(build.name, build.gid) if gid != build.gid]
    runner = subprocess.Popen([sys.executable, "-m", "workers.buildrun", "run", str(root), request_id],  # noqa: S603  # nosec B603
                              user=build.uid, group=build.gid, extra_groups=groups, umask=0o007, cwd="/",
                              env={k: v for k, v in os.environ.items() if k in ("PATH", "LANG")},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _RUNNERS_LOCK:
        _RUNNERS[request_id] = runner
    try:
        _, stderr = runner.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        runner.kill()
        runner.communicate()
        return 1, f"{build_unit(request_id)} timed out"
    finally:
        with _RUNNERS_LOCK:
            _RUNNERS.pop(request_id, None)
    return (0, "") if runner.returncode == 0 else (runner.returncode, stderr.strip()[-2000:])


def stop_build(request_id: str, grace: float = 5.0) -> tuple[int, str]:
    """Stop the runner of ``skynet-build@ID.service`` as systemd stops a unit: SIGTERM (the runner then kills
    its command: ``workers.buildrun``), SIGKILL after ``grace``. Stopping a unit that does not run succeeds."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(request_id)
    if runner is None:
        return 0, ""
    runner.terminate()
    try:
        runner.wait(grace)
    except subprocess.TimeoutExpired:
        runner.kill()
    return 0, ""


def _peer_uid(connection: socket.socket) -> int:
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", credentials)[1])


def _reply(connection: socket.socket, code: int, text: str) -> None:
    try:
        connection.sendall(json.dumps({"code": code, "text": text}).encode())
    except OSError as error:
        log.warning("reply not sent: %s", error)
    finally:
        connection.close()


def serve(root: Path, worker: Account, build: Account) -> None:
    """Answer the worker's requests about the app's unit and its builds until killed (root only)."""
    home = control_dir(root)
    home.mkdir(mode=0o750, exist_ok=True)
    os.chown(home, 0, worker.gid)
    home.chmod(0o750)  # the worker reads the app's log here, and writes nothing
    services = ProcessServices(home, home / "app.log", user=APP_USER)
    path = home / SOCKET
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        # Bound and listening under another name, then renamed: whoever sees the socket can connect to it
        # (the worker waits for it at boot; a socket that exists before listen() refuses connections).
        pending = home / f".{SOCKET}.pending"
        pending.unlink(missing_ok=True)
        server.bind(str(pending))
        os.chown(pending, 0, worker.gid)
        pending.chmod(0o660)
        server.listen(8)
        pending.rename(path)
        log.info("serving %s for uid %d at %s", APP_UNIT, worker.uid, path)
        while True:
            connection, _ = server.accept()
            connection.settimeout(10)
            try:
                request = connection.recv(64).decode("ascii", "replace").strip()
            except OSError as error:
                log.warning("request not read: %s", error)
                connection.close()
                continue
            if _peer_uid(connection) not in (0, worker.uid):
                _reply(connection, 1, "Access denied")
                continue
            if request.startswith("build "):  # minutes long: in its own thread, the app's requests go on
                def build_and_reply(connection: socket.socket = connection, request_id: str = request[6:]) -> None:
                    code, text = run_build(root, request_id, build)
                    log.info("build %s: %d %s", request_id, code, text)
                    _reply(connection, code, text)

                threading.Thread(target=build_and_reply, name="build", daemon=True).start()
                continue
            stop = BUILD_UNIT.fullmatch(request[5:]) if request.startswith("stop ") else None
            try:
                code, text = stop_build(stop.group(1)) if stop else answer(request, root, services)
            except Exception as error:  # noqa: BLE001 - the stand-in outlives any one request, as systemd does
                log.exception("%s failed", request)
                code, text = 1, f"{request} failed: {error}"
            log.info("%s: %d %s", request, code, text)
            _reply(connection, code, text)


def request(path: Path, what: str, timeout: float | None = 60.0) -> tuple[int, str]:
    """Send one request to the stand-in at ``path``; its exit status and output."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(what.encode() + b"\n")
        client.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: client.recv(65536), b""))
    data = json.loads(reply)
    return int(data["code"]), str(data["text"])


def systemctl(args: list[str], path: Path) -> int:
    """The calls ``SystemdServices`` makes, answered by the stand-in; the exit status systemctl would give."""
    plain = [a for a in args if not a.startswith("--") and a not in ("MainPID",)]
    if plain in (["daemon-reload"], ["enable", APP_UNIT]):
        return 0  # nothing to reload or enable: the stand-in reads no unit files
    build = BUILD_UNIT.fullmatch(plain[1]) if len(plain) == 2 and plain[0] in ("start", "stop") else None
    if build:  # start --wait: one build step, waited for; stop: a step left running by a worker process that died
        try:
            code, text = (request(path, f"build {build.group(1)}", timeout=None) if plain[0] == "start"
                          else request(path, f"stop {plain[1]}"))
        except (OSError, ValueError, KeyError) as error:
            print(f"Failed to connect to the service manager at {path}: {error}", file=sys.stderr)
            return 1
        if text:
            print(text, file=sys.stderr)
        return code
    if len(plain) != 2 or plain[1] != APP_UNIT:
        print(f"Unit {plain[-1] if plain else ''} not found (only {APP_UNIT} is served here).", file=sys.stderr)
        return NOT_FOUND
    verb = {"show": "main-pid"}.get(plain[0], plain[0])
    if verb not in REQUESTS:
        print(f"Unknown command {plain[0]!r}.", file=sys.stderr)
        return 1
    try:
        code, text = request(path, verb)
    except (OSError, ValueError, KeyError) as error:
        print(f"Failed to connect to the app's service manager at {path}: {error}", file=sys.stderr)
        return 1
    if text and not (verb == "is-active" and "--quiet" in args):
        print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """``serve ROOT`` (root) or ``systemctl --socket PATH ARGS...`` (the worker)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s appctl %(message)s")
        from workers.accounts import BUILD_USER, WORKER_USER

        serve(Path(args[1]), Account.named(WORKER_USER), Account.named(BUILD_USER))
        return 0
    if len(args) >= 3 and args[0] == "systemctl" and args[1] == "--socket":
        return systemctl(args[3:], Path(args[2]))
    print("usage: python -m workers.appctl serve ROOT | systemctl --socket PATH ARGS...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
