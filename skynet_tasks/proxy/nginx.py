"""Running Debian's nginx for the proxy layer: validate, swap atomically, reload only on change.

Everything nginx writes (pid, logs, temp files) lives under ``run_dir``, so an
unprivileged process or a test can run it on a loopback port without touching
the system's nginx.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from skynet_tasks.proctable import child_pids
from skynet_tasks.proxy.model import ip_literal

log = logging.getLogger(__name__)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


_CONFIG_ID = re.compile(r"^# config id ([0-9a-f]{16})$", re.MULTILINE)


def config_id(text: str) -> str | None:
    """The id a rendered configuration carries in its first lines and sends as X-Skynet-Config."""
    found = _CONFIG_ID.search(text)
    return found.group(1) if found else None


class NginxError(Exception):
    """nginx could not start, or refused a configuration."""


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of one apply: valid, changed, reloaded, nginx's error, the text's sha256."""

    ok: bool
    changed: bool
    reloaded: bool
    error: str | None = None
    sha256: str = ""


class NginxControl:
    """One nginx master and its files under ``run_dir``: start, apply a configuration, report, stop."""

    def __init__(self, run_dir: Path, binary: str = NGINX, listen_port: int | None = None,
                 listen_address: str | None = None) -> None:
        """Control the nginx whose files live in ``run_dir``.

        With ``listen_port`` (and the ``listen_address`` the configuration listens on),
        a reload is confirmed by asking nginx's /health there.
        """
        self.run_dir = run_dir
        self.binary = binary
        if listen_port and listen_address is None:
            raise ValueError("a listen port needs the listen address nginx is configured with")
        # Where to check that a reload took effect: nginx answers /health with the live
        # configuration's id in X-Skynet-Config (see ``config_id`` and templates/nginx.conf.j2).
        self.health_url = f"http://{ip_literal(listen_address)}:{listen_port}/health" \
            if listen_port and listen_address is not None else None
        self.conf = run_dir / "nginx.conf"
        self.pid_file = run_dir / "nginx.pid"
        self.status_file = run_dir / "status.json"

    def prepare(self) -> None:
        """Create the ``logs`` and ``tmp`` folders nginx writes to."""
        for sub in ("logs", "tmp"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)

    def _nginx(self, *args: str, conf: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, "-p", str(self.run_dir), "-c", str(conf or self.conf), *args],
                              capture_output=True, text=True, timeout=30, check=False)

    def master_pid(self) -> int | None:
        """The pid of the running master, or None if its pid file is missing or names no process."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self) -> bool:
        """Whether nginx's master runs."""
        return self.master_pid() is not None

    def start(self, text: str, read_at: float | None = None, refused: Sequence[str] = ()) -> ApplyResult:
        """Write ``text`` (which must validate) and start nginx's master with it."""
        self.prepare()
        result = self.apply(text, reload=False, read_at=read_at, refused=refused)
        if not result.ok:
            raise NginxError(f"the first configuration does not validate: {result.error}")
        if not self.running():
            started = self._nginx()
            if started.returncode != 0:
                raise NginxError(f"nginx did not start: {started.stderr.strip()}")
        return result

    def apply(self, text: str, reload: bool = True, read_at: float | None = None,
              refused: Sequence[str] = ()) -> ApplyResult:
        """Validate ``text`` with ``nginx -t``, swap it in atomically and reload, only if it changed.

        A configuration that does not validate changes nothing: the running nginx
        keeps its configuration, and status.json says what was refused and why.
        ``read_at`` is when the registry was read for ``text``: a text read before the
        running one (two syncs crossing) is not applied, and status.json keeps the
        newest read the running configuration reflects. ``refused`` (the registry entries
        the render left out, and why) goes into status.json as ``refused_entries``.
        """
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._locked():
            if read_at is not None and read_at < self.synced_at():
                return ApplyResult(True, False, False, sha256=digest)  # a newer read is live already
            if self.conf.exists() and self.conf.read_text() == text and self.running():
                if read_at is not None:
                    self._record(ApplyResult(True, False, False, sha256=digest), read_at, refused)
                return ApplyResult(True, False, False, sha256=digest)
            candidate = self.run_dir / f".nginx.conf.{os.getpid()}.new"
            candidate.write_text(text)
            checked = self._nginx("-t", "-q", conf=candidate)
            if checked.returncode != 0:
                candidate.unlink(missing_ok=True)
                lines = checked.stderr.strip().splitlines()
                error = next((line for line in lines if "[emerg]" in line), lines[-1] if lines else "nginx -t failed")
                log.error("nginx refused the rendered configuration; keeping the running one: %s", error)
                return self._record(ApplyResult(False, False, False, error, digest), refused=refused)
            os.replace(candidate, self.conf)
            reloaded = False
            master = self.master_pid()
            if reload and master is not None:
                old_workers = set(self._workers())
                os.kill(master, signal.SIGHUP)  # nginx re-reads nginx.conf; old workers finish their requests
                reloaded = self._wait_live(config_id(text), old_workers)
            return self._record(ApplyResult(True, True, reloaded, None, digest), read_at, refused)

    def _wait_live(self, wanted: str | None, old_workers: set[int], timeout: float = 10.0) -> bool:
        """After a reload, wait until nginx answers with the new configuration only.

        New workers answer with the new configuration's id in a header; the old
        workers accept connections until they have finished the ones they hold, so
        their exit is awaited too.
        """
        if wanted is None or self.health_url is None:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and old_workers & set(self._workers()):
            time.sleep(0.02)
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as response:  # noqa: S310  # nosec B310
                    if response.headers.get("X-Skynet-Config") == wanted:
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        log.warning("nginx did not serve configuration %s within %.0fs of its reload", wanted, timeout)
        return False

    def _workers(self) -> list[int]:
        master = self.master_pid()
        return child_pids(master) if master is not None else []

    def record_error(self, error: str) -> None:
        """Make a failure before nginx -t (a render error) visible in status.json too."""
        with self._locked():
            self._record(ApplyResult(False, False, False, error))

    def synced_at(self) -> float:
        """The time of the registry read that the running configuration reflects (0 if unknown)."""
        return float(self.status().get("synced_at") or 0)  # type: ignore[arg-type]

    def _record(self, result: ApplyResult, read_at: float | None = None,
                refused: Sequence[str] | None = None) -> ApplyResult:
        previous = self.status()
        synced = float(previous.get("synced_at") or 0)  # type: ignore[arg-type]
        status = {**asdict(result), "at": time.time(), "running": self.running(),
                  "synced_at": max(synced, read_at) if result.ok and read_at is not None else synced,
                  "refused_entries": list(refused) if refused is not None else previous.get("refused_entries", [])}
        if result.ok:
            status["last_ok"] = status["at"]
        else:
            status["last_ok"] = previous.get("last_ok")
        self._write_status(status)
        return result

    def _write_status(self, status: dict[str, object]) -> None:
        temp = self.status_file.with_suffix(".tmp")
        temp.write_text(json.dumps(status))
        os.replace(temp, self.status_file)

    def status(self) -> dict[str, object]:
        """What status.json says of the last apply (empty if it is missing or unreadable)."""
        try:
            return dict(json.loads(self.status_file.read_text()))
        except (OSError, ValueError):
            return {}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # The worker's poll thread and its registry_changed task may sync at the same moment.
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "sync.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def stop(self) -> None:
        """Stop nginx gracefully (requests in flight finish); return once it is gone or after 10 s."""
        master = self.master_pid()
        if master is None:
            return
        os.kill(master, signal.SIGQUIT)  # graceful: finish the requests in flight
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.master_pid() is not None:
            time.sleep(0.05)
