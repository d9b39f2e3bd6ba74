"""The webhook's routing table: which groups a push builds for, and the rollout policy a route gives
its rollouts instead of their skynet.yml's (as ``skynet deploy``'s options do)."""

from __future__ import annotations

import pytest

from skynet_tasks.policy_overrides import RolloutOverrides
from skynet_tasks.webhook.routing import RoutingError, parse_routes

pytestmark = pytest.mark.timeout(10)

ROUTE = {"repo": "acme/shop", "branch": "main", "env": "staging", "layer": "api"}


def test_a_route_without_a_rollout_key_overrides_nothing():
    [route] = parse_routes({"routes": [ROUTE]})

    assert (route.group, route.overrides) == ("staging-api", RolloutOverrides())


def test_a_routes_rollout_policy_is_checked_and_kept_as_the_builds_overrides():
    [route] = parse_routes({"routes": [{**ROUTE, "rollout": {
        "max_parallel": [1, "50%"], "on_failure": "revert", "min_healthy_time": "10s", "progress_deadline": 0,
        "canary": "manual", "promote_timeout": "1h", "windows": [{"days": "mon-fri", "hours": "09:00-17:00"},
                                                                 "sat 22:00-02:00 Europe/Paris"]}}]})

    assert route.overrides == RolloutOverrides(
        max_parallel=("1", "50%"), min_healthy_time=10.0, progress_deadline=0.0, on_failure="revert",
        canary="manual", promote_timeout=3600.0,
        windows=("mon,tue,wed,thu,fri 09:00:00-17:00:00 UTC", "sat 22:00:00-02:00:00 Europe/Paris"))


@pytest.mark.parametrize(("rollout", "message"), [
    ({"max_parallel": 0}, "route 1: rollout.max_parallel: 0 is not a batch size"),
    ({"max_parallel": "150%"}, "route 1: rollout.max_parallel: '150%' is not a batch size"),
    ({"on_failure": "rollback"}, "route 1: rollout.on_failure: 'rollback' is not a failure policy"),
    ({"min_healthy_time": "soon"}, "route 1: rollout.min_healthy_time: 'soon' is not a duration"),
    ({"windows": []}, "route 1: rollout.windows: an empty list would never open"),
    ({"windows": ["mon-fri 09:00-09:00"]}, "route 1: rollout.windows[0].hours: '09:00-09:00' is zero hours long"),
    ({"windows": "mon-fri 09:00-17:00"}, "route 1: rollout.windows: expected a list of windows"),
    ({"canary": "later"}, "route 1: rollout.canary: 'later' is not a canary mode: expected auto or manual"),
    ({"promote_timeout": "90d"}, "route 1: rollout.promote_timeout: '90d' is out of range"),
    ({"ignore_windows": True}, "route 1: rollout: unknown key(s) ignore_windows (known: max_parallel"),
    ("all at once", "route 1: rollout: expected a mapping"),
])
def test_a_bad_rollout_policy_in_a_route_refuses_the_table_naming_the_route_and_key(rollout, message):
    with pytest.raises(RoutingError) as refused:
        parse_routes({"routes": [{**ROUTE, "rollout": rollout}]})

    assert str(refused.value).startswith(message), refused.value
