"""moto's server mode as a child process: the AWS endpoint of local mode and the tests.

It is a real HTTP endpoint on loopback, so boto3 and kombu talk to it over the
network exactly as they would talk to AWS.
"""

from __future__ import annotations

import collections
import logging
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from skynet_tasks.httpcheck import http_get
from skynet_tasks.local.fault_counter import FaultCounter
from skynet_tasks.local.faults import parse_faults
from skynet_tasks.local.request_counts import RequestCounts
from skynet_tasks.settings import child_environment

log = logging.getLogger(__name__)

# moto's server accepts any credentials; these only have to look like keys.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105  # nosec B105 - moto's documented dummy value
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """A running ``moto_server`` process."""

    process: subprocess.Popen[bytes]
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        """The server's URL, as ``AWS_ENDPOINT_URL`` takes it."""
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The variables that point boto3 and kombu at this server."""
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    @classmethod
    def start(
        cls, host: str = "127.0.0.1", port: int | None = None, log_file: Path | None = None,
        timeout: float = 30.0, extra_env: dict[str, str] | None = None, faults: str = "",
        sqs_recheck: float | None = None, count_requests: bool = False,
    ) -> MotoServer:
        """Start moto's server; ``extra_env`` sets moto's own switches (``INITIAL_NO_AUTH_ACTION_COUNT``),
        ``faults`` its fault modes (``"conflicts,throttle=0.1"``: see ``skynet_tasks.local.faults``),
        ``sqs_recheck`` the longest an idle SQS long poll waits without looking again (default 1 s;
        ``compat.moto_sqs``),
        ``count_requests`` whether it counts what it serves (``request_counts``: the benchmarks)."""
        port = port or free_port(host)
        spec = parse_faults(faults).spec()  # a bad spec fails here, not in the child
        from skynet_tasks.local.moto_main import take_recheck_argument  # moto's patches: imported when needed

        recheck = [] if sqs_recheck is None else ["--sqs-recheck", repr(float(sqs_recheck))]
        take_recheck_argument(recheck)  # and a recheck out of range
        out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            [sys.executable, "-m", "skynet_tasks.local.moto_main", "-H", host, "-p", str(port),
             *(["--faults", spec] if spec else []), *recheck, *(["--count-requests"] if count_requests else [])],
            stdout=out, stderr=subprocess.STDOUT, env=child_environment(**LOCAL_CREDENTIALS, **(extra_env or {})),
            start_new_session=True,
        )
        server = cls(process, host, port)
        server.wait_ready(timeout)
        log.info("moto server %s started (pid %s)%s", server.endpoint, process.pid,
                 f" with faults {spec}" if spec else "")
        return server

    def request_counts(self) -> tuple[collections.Counter[tuple[str, str]], collections.Counter[str]]:
        """The requests served by (service, operation), and S3 bytes read by path (it must run with
        ``count_requests``)."""
        return RequestCounts.read(self.host, self.port)

    def fault_counts(self) -> dict[str, int]:
        """How many faults of each kind the server has served (it must run with ``faults``)."""
        return FaultCounter.read(self.host, self.port)

    def wait_ready(self, timeout: float) -> None:
        """Return once the server answers.

        RuntimeError if it exited; TimeoutError, the server stopped, if it did not answer within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                http_get(self.host, self.port, "/moto-api/", timeout=2)
                return
            except (OSError, HTTPException):
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"moto server on {self.endpoint} did not answer within {timeout}s")

    def stop(self) -> None:
        """Stop the server if it runs: terminate, then kill after 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
