"""A local cluster whose instances reach moto through the counting proxy."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from benchmarks.countingproxy import CountingProxy
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.cluster_info import ClusterInfo


class CountedCluster(LocalCluster):
    def __init__(self, directory: Path, proxy: CountingProxy, **kwargs: object) -> None:
        super().__init__(directory, extra_env={"AWS_ENDPOINT_URL": proxy.url}, **kwargs)  # type: ignore[arg-type]
        self.proxy = proxy

    def _up(self, api: int, rp: int, ready_timeout: float,
            extra_layers: Mapping[str, int] | None = None) -> ClusterInfo:
        assert self.moto is not None
        self.proxy.upstream = self.moto.endpoint
        return super()._up(api, rp, ready_timeout, extra_layers)
