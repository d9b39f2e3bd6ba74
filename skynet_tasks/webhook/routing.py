"""Which maintenance groups a push starts builds for: a routing table from configuration.

The table is trusted (an operator wrote it); the repository and branch it is
matched against are not (they come from the payload, checked by ``refnames``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skynet_tasks import names
from skynet_tasks.policy_overrides import NO_OVERRIDES, RolloutOverrides, parse_overrides
from skynet_tasks.webhook.refnames import BadName, check_branch

ROUTE_KEYS = {"repo", "branch", "env", "layer", "group", "rollout"}


class RoutingError(ValueError):
    """The routing table is malformed."""


@dataclass(frozen=True)
class Route:
    """One row of the routing table: a push to ``branch`` of ``repo`` builds for ``group``."""

    repo: str  # "name" or "owner/name", matched case-insensitively like GitHub
    branch: str
    env: str
    layer: str
    group: str
    # The rollout policy this route's rollouts take instead of their skynet.yml's (``policy_overrides``):
    # a staging route may roll out all at once, a production one wait for its windows and a person's promotion.
    overrides: RolloutOverrides = NO_OVERRIDES

    def matches(self, full_name: str, branch: str) -> bool:
        """Whether a push to ``branch`` of ``full_name`` is this route's (a bare repo name matches any owner)."""
        wanted = self.repo.lower()
        full = full_name.lower()
        return branch == self.branch and (wanted == full or ("/" not in wanted and wanted == full.split("/")[-1]))


def parse_routes(data: Any) -> list[Route]:
    """The routes of a routing table ``{"routes": [...]}``; RoutingError naming the first malformed route."""
    if not isinstance(data, dict) or not isinstance(data.get("routes"), list):
        raise RoutingError('routing table must be {"routes": [...]}')
    routes = []
    for number, entry in enumerate(data["routes"], start=1):
        if not isinstance(entry, dict) or not {"repo", "branch", "env", "layer"} <= set(entry) \
                or not set(entry) <= ROUTE_KEYS:
            raise RoutingError(f"route {number}: needs repo, branch, env, layer (and optionally group, rollout)")
        try:
            env = names.check_env(entry["env"])
            layer = names.check_name_part("layer", entry["layer"])
            group = names.check_name_part("group", entry.get("group") or names.default_group(env, layer))
            branch = check_branch(entry["branch"])
            overrides = parse_overrides(entry.get("rollout", {}), "rollout")
        except (ValueError, BadName) as error:
            raise RoutingError(f"route {number}: {error}") from None
        if not isinstance(entry["repo"], str) or not entry["repo"]:
            raise RoutingError(f"route {number}: repo must be a repository name")
        routes.append(Route(entry["repo"], branch, env, layer, group, overrides))
    return routes


def load_routes(path: Path) -> list[Route]:
    """The routes of the routing table in the JSON file ``path``; RoutingError if it is unreadable or malformed."""
    try:
        return parse_routes(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as error:
        raise RoutingError(f"cannot read the routing table {path}: {error}") from None


def match(routes: list[Route], full_name: str, branch: str) -> list[Route]:
    """The routes a push to ``branch`` of ``full_name`` starts builds for."""
    return [r for r in routes if r.matches(full_name, branch)]
