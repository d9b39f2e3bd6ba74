"""Releases: one build of one commit for one group, claimed by one builder at a time."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.dynamo import condition_failed, from_item, to_attr, to_item
from skynet_tasks.ledger import expressions
from skynet_tasks.ledger.table import Store, key
from skynet_tasks.states import ReleaseState


@dataclass(frozen=True)
class Release:
    """One build of one commit for one group."""

    group: str
    sha: str
    state: ReleaseState
    repo: str = ""
    branch: str = ""
    builder: str = ""
    started_at: float = 0.0
    finished_at: float | None = None
    lease_until: float = 0.0
    artifact_key: str | None = None
    manifest_key: str | None = None
    log_key: str | None = None
    sha256: str | None = None
    size: int | None = None
    error: str | None = None
    author: str | None = None
    message: str | None = None
    update_timeout: float | None = None
    max_parallel: list[str] | None = None  # its skynet.yml's rollout policy (``skynet_tasks.policy``)
    rollout_policy: dict[str, Any] | None = None  # the whole of it (``RolloutPolicy.record``)

    @classmethod
    def from_item(cls, values: dict[str, Any]) -> Release:
        """The release a state-table item records (attributes it does not know are left out)."""
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        known["state"] = ReleaseState(known["state"])
        return cls(**known)


def _pk(group: str) -> str:
    return f"release#{group}"


class ReleaseStore(Store):
    """Claims, outcomes and reads of builds."""

    def claim_build(self, release: Release, lease: float) -> Release | None:
        """Become the builder of ``release``; None if another instance built it or holds a live lease."""
        now = time.time()
        item = to_item({"pk": _pk(release.group), "sk": release.sha,
                        **{k: (str(v) if k == "state" else v) for k, v in asdict(release).items()},
                        "lease_until": now + lease})
        try:
            self.db.put_item(
                TableName=self.table, Item=item,
                ConditionExpression=("attribute_not_exists(pk) OR #s = :failed"
                                     " OR (#s = :building AND lease_until < :now)"),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":failed": to_attr("failed"), ":building": to_attr("building"),
                                           ":now": to_attr(now)},
            )
        except ClientError as error:
            if condition_failed(error):
                return None
            raise
        return release

    def renew_build(self, group: str, sha: str, builder: str, lease: float) -> bool:
        """Extend ``builder``'s claim on a build it is running to ``lease`` seconds from now; False if the
        claim is not its own any more (another instance took it over once it lapsed) or the build ended."""
        try:
            self.update_item(**expressions.update(
                self.table, key(_pk(group), sha), {"lease_until": time.time() + lease},
                condition="builder = :me AND #s = :building", names={"#s": "state"},
                condition_values={":me": builder, ":building": str(ReleaseState.BUILDING)}))
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def finish_build(self, group: str, sha: str, builder: str, state: ReleaseState, attributes: dict[str, Any]) -> None:
        """Record the outcome of a build this instance claimed."""
        values = {**attributes, "state": str(state), "finished_at": time.time()}
        self.update_item(**expressions.update(self.table, key(_pk(group), sha), values,
                                                 condition="builder = :me", condition_values={":me": builder}))

    def release(self, group: str, sha: str) -> Release | None:
        """The build of ``sha`` for ``group``, if one was claimed."""
        found = self.db.get_item(TableName=self.table, ConsistentRead=True, Key=key(_pk(group), sha)).get("Item")
        return Release.from_item(from_item(found)) if found else None

    def releases(self, group: str) -> list[Release]:
        """Every build of the group, oldest first."""
        return sorted((Release.from_item(values) for values in self.query_all(_pk(group))),
                      key=lambda r: r.started_at)

    def built_before(self, group: str, sha: str, than: str) -> bool:
        """Whether the group has a built release of ``sha`` whose build started before the build of ``than``.

        A push of ``sha`` to a group running ``than`` is then older than what runs.
        """
        older, newer = self.release(group, sha), self.release(group, than)
        return (older is not None and newer is not None and older.state is ReleaseState.BUILT
                and older.started_at < newer.started_at)
