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


@pytest.fixture(scope="session")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's agent wheel, built once for the stack-built clusters of this test process
    (they run in one worker: ``host_network_scope``), instead of once per cluster."""
    from skynet_tasks.stacks.wheels import build_wheel

    return build_wheel(tmp_path_factory.mktemp("agent-wheel"))


# ---- running the suite on several cores (pytest-xdist, ``make test``) -----------------------------
# The modules whose clusters boot instances from the stack's user data, on this host: they run one after
# another in one worker (``host_network_scope``).
BOOTS_STACK_INSTANCES = frozenset({"test_stack_cluster", "test_stack_operations", "test_stack_users", "test_demo"})
HOST_NETWORK = "host-network"
# The scopes that take longest, longest first: they start first, so that no long module starts last and
# keeps one worker busy while the other has nothing left. A scope not listed starts after these, in the
# order collected. A scheduling hint only: a wrong order costs time, never a test. Seconds (setup, calls
# and teardown of the scope's tests) from ``pytest --numprocesses 2 --durations=0`` on 2 cores shared with
# other work (load average 7 to 20, 2026-12-02): about twice what an idle machine takes.
LONGEST_FIRST = (
    HOST_NETWORK,  # 797 s: test_stack_cluster 264, test_demo 222, test_stack_operations 192, test_stack_users 120
    "test_rollout_cluster",  # 512 s
    "test_cloudformation_moto",  # most of test_cloudformation's 322 s: the stack created in moto
    "test_cloudformation",
    "test_soak",  # one test, 120 s in CI's last run
    "test_stack_deploy",  # 184 s
    "test_deadletters",  # 171 s with test_deadletters_cli, which starts a server per test too
    "test_deadletters_cli",
    "test_stack_privilege",  # 151 s
    "test_config_cluster",  # 130 s
    "test_faults",  # 125 s
    "test_stack_recipes",  # 120 s
    "test_resources",  # 90 s
    "test_webhook",  # 81 s
    "test_monitor_browser",  # 77 s
    "test_packaging",  # 76 s
    "test_loadbalancer",  # 75 s
    "test_ledger",  # 64 s
    "test_monitor_api",  # 61 s with test_monitor_deploy
    "test_monitor_deploy",
)


def host_network_scope(module: str) -> bool:
    """Whether a test module boots stack-built instances on this host, and so runs in the one
    ``host-network`` scope.

    Each such cluster claims a VPC range of its own (``Vpc.claim``), and the user data downloads the
    agent's wheel into a folder of its own; but the demo checks that no namespace is left behind on the
    whole host, so it cannot run beside another booting cluster, and the others were not measured
    running two at a time on two cores (a boot's time bounds were set one cluster at a time). The
    modules that deploy a stack without booting it (``test_stack_deploy``, ``test_stack_privilege``) or
    run the plain cluster (``test_stack_recipes``) are scopes of their own.
    """
    return module in BOOTS_STACK_INSTANCES


def scope_of(nodeid: str) -> str:
    """The scope a test runs in: its module, or ``host-network`` (``host_network_scope``)."""
    module = Path(nodeid.split("::", 1)[0]).stem
    return HOST_NETWORK if host_network_scope(module) else module


def start_rank(scope: str) -> int:
    """Where a scope starts: its place in ``LONGEST_FIRST``, or after all of them."""
    return LONGEST_FIRST.index(scope) if scope in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scheduling for ``make test``: a scope's tests in one worker (a module's
    module-scoped cluster is built once; ``scope_of``), the scopes started in collection order
    (``pytest_collection_modifyitems``), the next one to a worker as soon as it is almost idle.

    A scheduler of our own, because xdist 3.8's ``--dist loadgroup`` did not keep marked tests together
    here; ``loadscope`` with the scope said here does exactly that.
    """
    from xdist.scheduler import LoadScopeScheduling

    # loadscope's default order is "most tests first", which put the longest module (one test) last.
    config.option.loadscopereorder = False

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest scopes first (``LONGEST_FIRST``), each kept in the order collected."""
    items.sort(key=lambda item: start_rank(scope_of(item.nodeid)))
