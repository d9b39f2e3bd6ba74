"""``python -m skynet_tasks.supervisor SPEC ...``: the app's supervisor where there is no systemd.

The local twin of ``skynet-app.service``: it runs in a session of its own (not the
worker's), so stopping, restarting or killing the worker leaves the app serving. It
starts the command in ``SPEC`` (``skynet_tasks.appspec``), writes the app's output to
the app log with rotation, and restarts the app when it fails, as systemd's
``Restart=on-failure`` does: an exit status other than 0, or a signal other than
SIGHUP, SIGINT, SIGTERM and SIGPIPE. After ``burst`` failures within ``interval``
seconds it gives up (systemd's ``StartLimitBurst``/``StartLimitIntervalSec``) and exits.

SIGTERM stops the app (SIGTERM to it) and then the supervisor.

``--user`` runs the app as that user and its own group (``User=`` would add the user's supplementary
groups; the app's user, www-data, has none): the supervisor, like systemd, stays root and the app
never is.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import pwd
import signal
import subprocess  # nosec B404 - the command the worker wrote in the spec
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from skynet_tasks.appspec import AppSpec, AppSpecError, read_spec

CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})


@dataclass(frozen=True)
class RestartPolicy:
    """When a failed app is started again, and when the supervisor gives up."""

    burst: int = 5  # failures within ``interval`` seconds before giving up
    interval: float = 10.0
    first_delay: float = 0.1  # doubled after each failure in a row, up to max_delay
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.burst < 1 or self.interval <= 0 or self.first_delay < 0 or self.max_delay < self.first_delay:
            raise ValueError(f"invalid restart policy {self}")


def clean_exit(returncode: int) -> bool:
    """Whether systemd's ``Restart=on-failure`` would leave this exit alone."""
    return returncode == 0 or (returncode < 0 and -returncode in CLEAN_SIGNALS)


def next_delay(failures: list[float], now: float, policy: RestartPolicy) -> float | None:
    """Seconds to wait before starting again after the failures at ``failures`` (monotonic times,
    the latest last), or None to give up."""
    recent = [t for t in failures if now - t < policy.interval]
    if len(recent) >= policy.burst:
        return None
    return min(policy.first_delay * 2 ** (len(recent) - 1), policy.max_delay)


def app_logger(log_file: Path, max_bytes: int, backups: int) -> logging.Logger:
    """A logger writing to ``log_file``, rotated at ``max_bytes`` with ``backups`` old files kept."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger(f"skynet.app.{log_file}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _pump(stream: IO[bytes], logger: logging.Logger) -> None:
    for line in iter(stream.readline, b""):
        logger.info("%s", line.decode(errors="replace").rstrip("\n"))


class Supervisor:
    """Runs one app, restarting it by ``policy``; ``run`` returns the supervisor's exit status."""

    def __init__(self, spec: AppSpec, logger: logging.Logger, policy: RestartPolicy, main_pid_file: Path,
                 user: str | None = None) -> None:
        self.spec = spec
        self.user = user
        self.log = logger
        self.policy = policy
        self.main_pid_file = main_pid_file
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None

    def stop(self, *_: object) -> None:
        """Stop the app and do not start it again (the SIGTERM handler)."""
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()

    def _start(self) -> subprocess.Popen[bytes]:
        # Same process group as the supervisor: stopping the supervisor's group stops everything.
        as_user: dict[str, object] = {}
        if self.user is not None:  # the user's own group only: none of the supervisor's groups
            as_user = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}
        child = subprocess.Popen(list(self.spec.command), cwd=self.spec.cwd, env=dict(self.spec.env),  # type: ignore[call-overload]  # noqa: S603  # nosec B603
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 **as_user)
        self.main_pid_file.write_text(f"{child.pid}\n")
        self.log.info("[supervisor] started %s: pid %s", " ".join(self.spec.command), child.pid)
        return child

    def run(self) -> int:
        """Run the app, starting it again after each exit: 0 once asked to stop, 1 if it crashed too often."""
        failures: list[float] = []
        while not self.stopping.is_set():
            try:
                self.child = self._start()
                if self.stopping.is_set():  # asked to stop while it was starting
                    self.child.terminate()
            except (OSError, KeyError) as error:  # KeyError: no such user
                self.log.info("[supervisor] cannot start %s: %s", self.spec.command[0],
                              error.strerror if isinstance(error, OSError) else f"no user {self.user}")
                code = 127
            else:
                assert self.child.stdout is not None  # noqa: S101  # nosec B101 - stdout=PIPE above
                pump = threading.Thread(target=_pump, args=(self.child.stdout, self.log), daemon=True)
                pump.start()
                code = self.child.wait()
                pump.join(timeout=2)  # a grandchild may still hold the pipe open
            self.main_pid_file.unlink(missing_ok=True)
            if self.stopping.is_set() or clean_exit(code):
                self.log.info("[supervisor] app exited with %s; not restarting", code)
                return 0
            now = time.monotonic()
            failures.append(now)
            delay = next_delay(failures, now, self.policy)
            if delay is None:
                self.log.info("[supervisor] app failed %d times within %.0fs; giving up", self.policy.burst,
                              self.policy.interval)
                return 1
            self.log.info("[supervisor] app exited with %s; restarting in %.1fs", code, delay)
            self.stopping.wait(delay)
        return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The supervisor's command-line arguments."""
    parser = argparse.ArgumentParser(prog="python -m skynet_tasks.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--pid-file", type=Path, required=True, help="this supervisor's pid, removed at exit")
    parser.add_argument("--main-pid-file", type=Path, required=True, help="the running app's pid")
    parser.add_argument("--log-file", type=Path, required=True)
    parser.add_argument("--log-max-bytes", type=int, default=10 * 1024 * 1024)
    parser.add_argument("--log-backups", type=int, default=5)
    parser.add_argument("--burst", type=int, default=RestartPolicy.burst)
    parser.add_argument("--interval", type=float, default=RestartPolicy.interval)
    parser.add_argument("--user", help="run the app as this user (the supervisor must be root)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Supervise the app in the spec file until stopped or given up; the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        spec = read_spec(args.spec)
        policy = RestartPolicy(burst=args.burst, interval=args.interval)
    except (AppSpecError, ValueError) as error:
        print(f"supervisor: {error}", file=sys.stderr)
        return 2
    supervisor = Supervisor(spec, app_logger(args.log_file, args.log_max_bytes, args.log_backups), policy,
                            args.main_pid_file, user=args.user)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the worker's terminal going away is not a stop
    try:
        return supervisor.run()
    finally:
        # Only our own pid: a newer supervisor may already have written its own.
        try:
            if args.pid_file.read_text().strip() == str(os.getpid()):
                args.pid_file.unlink()
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
