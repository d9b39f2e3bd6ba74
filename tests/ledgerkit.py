"""A moto server with the local env's tables and queues made, as a conductor's ledger sees them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.resources import resolve


@contextmanager
def bootstrapped_moto(groups: list[str]) -> Iterator[tuple[MotoServer, Aws]]:
    """A new moto server with env ``local`` bootstrapped for ``groups``, and its clients; stopped on exit."""
    server = MotoServer.start()
    try:
        aws = aws_for(server.environment())
        bootstrap_env(aws, resolve(aws, "local"), groups)
        yield server, aws
    finally:
        server.stop()
