"""A repo bucket on a moto server of its own, as an instance's artifact store sees it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.aws import aws_for
from skynet_tasks.local.motoserver import MotoServer


@contextmanager
def moto_artifact_store(bucket: str) -> Iterator[ArtifactStore]:
    """An ``ArtifactStore`` over a new, empty ``bucket`` of a moto server that stops on exit."""
    server = MotoServer.start()
    try:
        s3 = aws_for(server.environment()).s3
        s3.create_bucket(Bucket=bucket)
        yield ArtifactStore(s3, bucket)
    finally:
        server.stop()
