"""The load balancer stand-in's engine: a TCP forwarder and the health checks that steer it (asyncio).

Each accepted connection goes whole to one target, as an ALB's does for the life of
a connection; a target that refuses is skipped for the next one, and a client no
target takes gets ALB's 502.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from skynet_tasks.httpcheck import http_get
from skynet_tasks.local.healthcheck import HealthCheck
from skynet_tasks.local.targets import Target, TargetPool, TargetState

log = logging.getLogger(__name__)

BAD_GATEWAY = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
               b"Connection: close\r\n\r\nBad Gateway\n")
CHUNK = 65536
# ALB's user agent, so a target's access log tells checks from traffic.
CHECK_HEADERS = {"User-Agent": "ELB-HealthChecker/2.0"}


def _no_delay(writer: asyncio.StreamWriter) -> None:
    # Small requests and answers must leave at once: Nagle with delayed ACKs cost 40 ms a request before.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class LoadBalancer:
    """Listens on ``listen``, forwards each connection to a healthy target from ``targets()``.

    ``targets`` is called once per health check interval (in a thread: it may block),
    so targets that appear or go away are followed.
    """

    def __init__(self, listen: tuple[str, int], targets: Callable[[], Iterable[Target]], check: HealthCheck,
                 connect_timeout: float = 10.0) -> None:
        self.listen = listen
        self.check = check
        self.connect_timeout = connect_timeout
        self.pool = TargetPool(check)
        self._targets = targets
        self._server: asyncio.Server | None = None
        self._checker: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The address it listens on (the real port when asked for port 0)."""
        if self._server is None:
            raise RuntimeError("the load balancer is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def states(self) -> dict[Target, TargetState]:
        """Every registered target's health state."""
        return self.pool.states()

    async def start(self) -> None:
        """Read the targets once, bind the listener, and start the health checks."""
        # Enough threads that a slow target's checks never delay another's.
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lb-check")
        try:
            self.pool.sync(await asyncio.get_running_loop().run_in_executor(self._executor, self._read_targets))
            self._server = await asyncio.start_server(self._accept, *self.listen)
        except BaseException:
            self._executor.shutdown(wait=False, cancel_futures=True)
            raise
        self._checker = asyncio.create_task(self._check_forever())
        log.info("listening on %s:%d", *self.address)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening and checking; connections in flight get ``grace`` seconds to finish."""
        if self._server is not None:
            self._server.close()
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.gather(self._checker, return_exceptions=True)
        if self._connections:
            _, pending = await asyncio.wait(set(self._connections), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")

    def _read_targets(self) -> list[Target]:
        return list(self._targets())

    async def _check_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                self.pool.sync(await loop.run_in_executor(self._executor, self._read_targets))
            except Exception as error:  # noqa: BLE001 - a bad read keeps the last good targets, as ALB keeps its own
                log.error("targets unreadable, keeping the last ones: %s", error)
            targets = self.pool.targets()
            results = await asyncio.gather(*(self._check_one(t) for t in targets))
            for target, passed in zip(targets, results, strict=True):
                self.pool.record(target, passed)
            await asyncio.sleep(max(0.0, started + self.check.interval - loop.time()))

    async def _check_one(self, target: Target) -> bool:
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._executor, self._probe, target)
        try:
            return await asyncio.wait_for(call, self.check.timeout)
        except TimeoutError:
            log.debug("health check of %s timed out", target)
            return False
        except Exception:  # noqa: BLE001 - a check that crashes is a failed check, never a stopped checker
            log.exception("health check of %s crashed", target)
            return False

    def _probe(self, target: Target) -> bool:
        try:
            status, _ = http_get(target.host, self.check.port_for(target.port), self.check.path,
                                 self.check.timeout, headers=CHECK_HEADERS)
        except (OSError, http.client.HTTPException, ValueError) as error:
            log.debug("health check of %s failed: %s", target, error)
            return False
        passed = self.check.passes(status)
        if not passed:
            log.debug("health check of %s answered %d", target, status)
        return passed

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        # Known tasks are the connections in flight that stop() lets finish.
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            _no_delay(client_writer)
            upstream = await self._connect()
            if upstream is None:
                await self._bad_gateway(client_reader, client_writer)
                return
            upstream_reader, upstream_writer = upstream
            try:
                await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
            finally:
                upstream_writer.close()
        finally:
            client_writer.close()
            if task is not None:
                self._connections.discard(task)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for target in self.pool.choose():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port),
                                                        self.connect_timeout)
            except (OSError, TimeoutError) as error:
                log.warning("target %s refused a connection (%s); trying the next", target, error or "timeout")
                continue
            _no_delay(writer)
            return reader, writer
        log.warning("no target took the connection: 502")
        return None

    async def _bad_gateway(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(BAD_GATEWAY)
            await writer.drain()
            writer.write_eof()
            # Read what the client sent until it closes: closing with unread bytes would reset the
            # connection, and the client would see an error instead of the 502.
            async with asyncio.timeout(1.0):
                while await reader.read(CHUNK):
                    pass
        except (OSError, TimeoutError):
            pass


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until its end, then half-close the other side so the peer sees the end too."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # A reset on one side ends this direction; closing both sockets then ends the other.
        writer.close()
