"""A build request: what the webhook, ``skynet deploy`` and the sweeper ask a group to build.

Trust: a request arrives as a message on the group's maintenance queue. Only Skynet's
own instances, CLI and webhook can send there (IAM), but ``BuildRequest.from_dict``
still checks every field before anything is built, so a malformed one fails with
``BadRequest`` instead of reaching git or a queue name.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from skynet_tasks import gitrepo, names

# The source of the requests the webhook sends: a push, whose commit the builder checks is still the
# branch's tip and not older than what the group runs (``tasks.build``). An operator's deploy or
# rollback names an older commit on purpose and is not checked.
WEBHOOK_SOURCE = "webhook"


class BadRequest(ValueError):
    """A build request that cannot be acted on."""


@dataclass(frozen=True)
class BuildRequest:
    """One commit of a group's repository to build and roll out as ``rollout_id``."""

    group: str
    repo: str
    branch: str
    sha: str
    rollout_id: str
    source: str
    requested_at: float
    forced: bool = False  # the push moved the branch back (GitHub's ``forced``): build it although it is older

    @classmethod
    def from_dict(cls, data: Any) -> BuildRequest:
        """The request a message carried, or BadRequest naming the field that is wrong."""
        if not isinstance(data, dict):
            raise BadRequest("a build request must be an object")
        try:
            group = names.check_name_part("group", data.get("group", ""))
            sha = gitrepo.check_sha(data.get("sha", ""))
        except (ValueError, gitrepo.GitError) as error:
            raise BadRequest(str(error)) from None
        for key in ("repo", "branch", "rollout_id", "source"):
            if not isinstance(data.get(key), str) or not data[key] or len(data[key]) > 500:
                raise BadRequest(f"build request field {key!r} must be a non-empty string")
        forced = data.get("forced", False)
        if not isinstance(forced, bool):
            raise BadRequest("build request field 'forced' must be true or false")
        return cls(group=group, repo=data["repo"], branch=data["branch"], sha=sha, rollout_id=data["rollout_id"],
                   source=data["source"], requested_at=float(data.get("requested_at") or time.time()),
                   forced=forced)

    def to_dict(self) -> dict[str, Any]:
        """The request as a message carries it."""
        return dict(self.__dict__)


def new_rollout_id(now: float | None = None) -> str:
    """A rollout id that sorts by creation time and is unique without coordination."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
    return f"r{stamp}-{secrets.token_hex(3)}"
