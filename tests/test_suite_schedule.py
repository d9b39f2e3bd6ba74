"""How ``make test`` shares the suite between its two workers (tests/conftest.py): which tests run
together, and which start first. Driven through pytest-xdist's own scheduler with stand-in workers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import conftest
import pytest

pytestmark = pytest.mark.timeout(30)

TESTS = Path(__file__).parent


class Worker:
    """A stand-in for an xdist worker: records the tests it is sent."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent += indexes

    def shutdown(self) -> None:
        self.shutting_down = True


def scheduled(collected: list[str]) -> tuple[Any, list[Worker]]:
    """The suite's scheduler for two workers, after the first distribution of ``collected``."""
    config = SimpleNamespace(getvalue=lambda name: ["2*popen"], option=SimpleNamespace(loadscopereorder=True))
    scheduler = conftest.pytest_xdist_make_scheduler(config, None)
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
    for worker in workers:
        scheduler.add_node_collection(worker, collected)
    scheduler.schedule()
    return scheduler, workers


def collection_order(nodeids: list[str]) -> list[str]:
    items = [SimpleNamespace(nodeid=nodeid) for nodeid in nodeids]
    conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    return [item.nodeid for item in items]


def test_every_module_the_schedule_names_exists():
    # A renamed module would silently fall out of its scope or its place in the order.
    named = set(conftest.BOOTS_STACK_INSTANCES) | set(conftest.LONGEST_FIRST) - {conftest.HOST_NETWORK}
    assert {name for name in named if not (TESTS / f"{name}.py").is_file()} == set()


def test_the_modules_that_boot_stack_instances_share_one_scope_and_the_others_have_their_own():
    assert {conftest.scope_of(f"tests/{m}.py::test_x") for m in conftest.BOOTS_STACK_INSTANCES} == {"host-network"}
    for module in ("test_stack_deploy", "test_stack_privilege", "test_stack_recipes", "test_conductor"):
        assert conftest.scope_of(f"tests/{module}.py::test_x[1]") == module


def test_the_longest_scopes_are_collected_first_in_their_order_and_the_rest_keeps_its_order():
    first, second = conftest.LONGEST_FIRST[:2]
    module = {conftest.HOST_NETWORK: "test_demo"}
    collected = ["tests/test_a.py::one", f"tests/{module.get(second, second)}.py::t", "tests/test_b.py::one",
                 f"tests/{module.get(first, first)}.py::t", "tests/test_a.py::two"]

    ordered = collection_order(collected)

    assert ordered == [collected[3], collected[1], collected[0], collected[2], collected[4]]


def test_the_first_scope_goes_whole_to_one_worker_even_with_fewer_tests_than_the_next():
    # Given the longest scope with one test, then a module of many quick tests
    slow = "tests/test_demo.py::test_the_story"
    quick = [f"tests/test_quick.py::test_{n}" for n in range(20)]
    host = [f"tests/test_stack_users.py::test_{n}" for n in range(3)]
    collected = collection_order([*quick, slow, *host])

    # When the scheduler hands out the first work
    scheduler, (gw0, gw1) = scheduled(collected)

    # Then one worker starts the host-network scope (the demo and the stack modules together), and the
    # other the quick module: not "most tests first", which started the longest module last.
    indexes = {nodeid: n for n, nodeid in enumerate(scheduler.collection)}
    assert sorted(gw0.sent) == sorted(indexes[n] for n in (slow, *host))
    assert sorted(gw1.sent) == sorted(indexes[n] for n in quick)
