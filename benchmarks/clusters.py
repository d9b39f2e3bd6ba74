"""A local cluster whose AWS requests are counted: by moto itself, or at a proxy in front of it."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from pathlib import Path

from benchmarks.countingproxy import CountingProxy
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.cluster_info import ClusterError, ClusterInfo


class CountedCluster(LocalCluster):
    """Counts in moto's own process (``--count-requests``: no hop, no CPU of the benchmark's own on every
    call), or at ``proxy`` for a benchmark that also makes requests fail there (the soak's faults)."""

    def __init__(self, directory: Path, proxy: CountingProxy | None = None, **kwargs: object) -> None:
        if proxy is None:
            super().__init__(directory, count_requests=True, **kwargs)  # type: ignore[arg-type]
        else:
            super().__init__(directory, extra_env={"AWS_ENDPOINT_URL": proxy.url}, **kwargs)  # type: ignore[arg-type]
        self.proxy = proxy

    def _up(self, api: int, rp: int, ready_timeout: float,
            extra_layers: Mapping[str, int] | None = None) -> ClusterInfo:
        assert self.moto is not None
        if self.proxy is not None:
            self.proxy.upstream = self.moto.endpoint
        return super()._up(api, rp, ready_timeout, extra_layers)

    def requests(self) -> tuple[collections.Counter[tuple[str, str]], collections.Counter[str]]:
        """The AWS requests so far by (service, operation), and the bytes of S3 objects read by path."""
        if self.proxy is not None:
            return self.proxy.snapshot(), collections.Counter(self.proxy.s3_get_bytes)
        if self.moto is None:
            raise ClusterError("moto's server is not running")
        return self.moto.request_counts()
