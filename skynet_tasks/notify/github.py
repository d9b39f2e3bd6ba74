"""GitHub's Deployments API: one deployment per code rollout, and a status for each of its notices.

So the commit shows where it runs: ``POST /repos/{owner}/{repo}/deployments`` (ref: the release's
sha; environment: the group; ``auto_merge`` false, ``required_contexts`` empty, so GitHub neither
merges nor checks statuses; ``payload.skynet_rollout``: the rollout's id), then
``POST .../deployments/{id}/statuses`` (``in_progress``, ``success``, ``failure``, ``inactive``).

Idempotent: the deployment is looked up by the rollout id in its payload (among the sha's deployments
to that environment) before one is created, so a retried or redelivered notice never makes a second.
Notices may arrive out of order (one retried while the next went through): a start or a publication
never overrides a status that ended the deployment.

What GitHub answers is untrusted: only deployment ids (integers) and status states are read from it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from skynet_tasks.notify.events import Notice, NoticeKind
from skynet_tasks.notify.targets import GitHubTarget, read_secret
from skynet_tasks.notify.transport import Answer, NotifyRefused, send
from skynet_tasks.states import RolloutKind

API_VERSION = "2022-11-28"
ROLLOUT_KEY = "skynet_rollout"
SHA = re.compile(r"^[0-9a-f]{40}$")
# A notice's status on the deployment. Halted and reverted: the release failed here.
STATUS = {
    NoticeKind.STARTED: "in_progress", NoticeKind.PUBLISHED: "in_progress", NoticeKind.RESUMED: "in_progress",
    NoticeKind.COMPLETED: "success", NoticeKind.HALTED: "failure", NoticeKind.REVERTED: "failure",
    NoticeKind.ABORTED: "inactive", NoticeKind.SUPERSEDED: "inactive",
}
ENDED = frozenset({"success", "failure", "error", "inactive"})
DESCRIPTION = {
    NoticeKind.STARTED: "Skynet rollout started: the canary updates first",
    NoticeKind.PUBLISHED: "Canary succeeded: the group updates",
    NoticeKind.RESUMED: "Rollout resumed",
    NoticeKind.COMPLETED: "Every instance of the group runs this release",
    NoticeKind.HALTED: "Rollout halted",
    NoticeKind.REVERTED: "Rollout reverted to the previous release",
    NoticeKind.ABORTED: "Rollout aborted by an operator",
    NoticeKind.SUPERSEDED: "Superseded by a newer release",
}


class GitHubDeployments:
    """A repository's deployments, through GitHub's REST API (or GitHub Enterprise's, or a local stand-in)."""

    def __init__(self, target: GitHubTarget) -> None:
        self.target = target
        self.base = f"{target.api_url}/repos/{quote(target.repo, safe='/')}/deployments"

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Answer:
        token = read_secret(self.target.token_file, "github.token_file").decode()
        headers = {"Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}",
                   "X-GitHub-Api-Version": API_VERSION, "User-Agent": "Skynet-Notify"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        return send(method, url, data, headers, self.target.ca_bundle)

    def find(self, sha: str, environment: str, rollout_id: str) -> int | None:
        """The id of the deployment this rollout already has, if any."""
        query = urlencode({"sha": sha, "environment": environment, "per_page": 100})
        listed = self._call("GET", f"{self.base}?{query}").body
        for deployment in listed if isinstance(listed, list) else []:
            payload = deployment.get("payload") if isinstance(deployment, dict) else None
            if isinstance(payload, str):  # GitHub may echo a payload sent as text
                try:
                    payload = json.loads(payload)
                except ValueError:
                    payload = None
            if isinstance(payload, dict) and payload.get(ROLLOUT_KEY) == rollout_id \
                    and isinstance(deployment.get("id"), int):
                return int(deployment["id"])
        return None

    def deployment_for(self, notice: Notice) -> int:
        """The rollout's deployment: found, or created."""
        found = self.find(notice.release, notice.group, notice.rollout_id)
        if found is not None:
            return found
        created = self._call("POST", self.base, {
            "ref": notice.release, "task": "deploy", "auto_merge": False, "required_contexts": [],
            "environment": notice.group, "payload": {ROLLOUT_KEY: notice.rollout_id},
            "description": f"Skynet rollout {notice.rollout_id}"[:140], "transient_environment": False,
        }).body
        if not isinstance(created, dict) or not isinstance(created.get("id"), int):
            raise NotifyRefused(f"POST {self.base}: the answer holds no deployment id")
        return int(created["id"])

    def ended(self, deployment: int) -> bool:
        """Whether the deployment already has a status that ended it."""
        listed = self._call("GET", f"{self.base}/{deployment}/statuses?per_page=100").body
        statuses = listed if isinstance(listed, list) else []
        return any(isinstance(status, dict) and status.get("state") in ENDED for status in statuses)

    def report(self, notice: Notice) -> int | None:
        """Post the notice's status on its rollout's deployment; the deployment's id (None: not a code rollout)."""
        if notice.rollout_kind is not RolloutKind.CODE or not SHA.match(notice.release):
            return None  # a config or agent rollout has no commit of the repository to show it on
        deployment = self.deployment_for(notice)
        state = STATUS[notice.kind]
        if notice.kind in (NoticeKind.STARTED, NoticeKind.PUBLISHED) and self.ended(deployment):
            return deployment  # a late start: the deployment has already ended
        description = DESCRIPTION[notice.kind] + (f": {notice.reason}" if notice.reason and state != "success" else "")
        self._call("POST", f"{self.base}/{deployment}/statuses", {
            "state": state, "environment": notice.group, "description": description[:140]})
        return deployment
