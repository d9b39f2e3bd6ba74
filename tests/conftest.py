"""When a test on a local cluster fails, say what each instance's worker was doing.

A cluster test usually fails far from its cause (an instance that died or stopped
heartbeating minutes earlier), and CI keeps only the end of the output: this adds a
short section per failed test with each instance's process state, registration and
last log lines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.proctable import process_alive

LOG_LINES = 6


def describe_cluster(cluster: LocalCluster) -> str:
    info = cluster.info
    if info is None:
        return "cluster not up"
    try:
        registered = {e.instance_id: e for e in cluster_registry_entries(cluster)}
    except Exception as error:  # noqa: BLE001 - a diagnostic must not hide the failure it explains
        registered, note = {}, f"registry unreadable: {error!r}"
    else:
        note = ""
    now, lines = time.time(), [note] if note else []
    for instance in info.instances:
        entry = registered.get(instance.id)
        alive = process_alive(instance.pid)
        state = (f"registered {entry.health}, heartbeat {now - entry.heartbeat:.0f}s ago, release "
                 f"{entry.release[:10]}" if entry else "NOT registered")
        lines.append(f"{instance.id}: worker pid {instance.pid} {'alive' if alive else 'DEAD'}, {state}")
        if not alive or entry is None or now - entry.heartbeat > cluster.heartbeat_max_age:
            lines += [f"    {line}" for line in _tail(Path(instance.root) / "logs" / "worker.log")]
    return "\n".join(lines)


def cluster_registry_entries(cluster: LocalCluster) -> list[Any]:
    from clusterkit import registry

    return registry(cluster).endpoints("local")


def _tail(path: Path) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    interesting = [line[:200] for line in text.splitlines() if " ERROR " in line or " WARNING " in line
                   or "Traceback" in line or "exited" in line]
    return (interesting[-LOG_LINES:] or text.splitlines()[-LOG_LINES:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if report.failed and isinstance(cluster, LocalCluster):
        report.sections.append(("local cluster at failure", describe_cluster(cluster)))


@pytest.fixture(autouse=True, scope="module")
def environment_of_this_module_only() -> Iterator[None]:
    """What a module's tests put in ``os.environ`` goes with the module.

    Some helpers point this process at a cluster's AWS (``clusterkit.sender_for`` sets its
    ``AWS_ENDPOINT_URL`` and keys): left there, the next module's in-process clients would talk to a
    server that has stopped, depending on which modules ran before it in the same worker.
    """
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


# ---- running the suite on several cores (pytest-xdist, ``make test``) -----------------------------
def shares_the_host_network(module: str) -> bool:
    """Whether a test module builds the stack-built cluster (``test_stack_*``, and the demo, which runs on it).

    Such a cluster takes the host's bridge and namespaces for the template's VPC range, which a
    second one at the same time cannot have: those modules all run in one worker, one after another.
    """
    return module.startswith("test_stack_") or module == "test_demo"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scheduling for ``make test``: a module's tests in one worker (its module-scoped
    cluster is built once), every stack-built module in the same one (``shares_the_host_network``).

    A scheduler of our own, because xdist 3.8's ``--dist loadgroup`` did not keep marked tests together
    here; ``loadscope`` with the scope said here does exactly that.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "host-network" if shares_the_host_network(Path(module).stem) else module

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The stack-built modules first: the longest of the workers' shares starts at once, the rest fills in."""
    items.sort(key=lambda item: not shares_the_host_network(item.path.stem))
