"""The receiver's logic, shared by the HTTP server and the Lambda handler.

Trust boundary: the request (headers and body) is untrusted until its signature
verifies, and its fields are untrusted after that too (a leaked secret must not
become code execution): names are checked against git's and GitHub's rules, and
the repository URL a build uses comes from the group's own registration, never
from the payload. The secret is never logged and never echoed. A valid signature does not
make a request fresh: GitHub signs the body only, so a captured push can be sent again under
a new delivery id. Each push is therefore claimed once (``deliveries.push_id``), a push older
than what its group runs starts nothing unless it was forced, and the builder checks the
commit against git again (``builder.push_refusal``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from skynet_tasks import names
from skynet_tasks.deploys import StartedBuild
from skynet_tasks.webhook import signature
from skynet_tasks.webhook.deliveries import DeliveryLedger, push_id
from skynet_tasks.webhook.refnames import ZERO_SHA, BadName, check_branch, check_repository, check_sha
from skynet_tasks.webhook.routing import Route, match

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 5 * 1024 * 1024  # push payloads list at most 20 commits; GitHub caps at 25 MB
_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_EVENT = re.compile(r"^[a-z_]{1,64}$")

# Enqueue the build of a commit for a route's group; the flag says the push was forced.
StartBuild = Callable[[Route, str, bool], StartedBuild]
# Whether a commit is older than what the route's group runs (the ledger knows: no git on Lambda).
OlderThanRunning = Callable[[Route, str], bool]

OLDER = "older than the running release"


@dataclass(frozen=True)
class Response:
    """What the receiver answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]

    def json(self) -> bytes:
        """The body as JSON bytes."""
        return json.dumps(self.body).encode()


def refuse(status: int, error: str) -> Response:
    """A refusal: ``status`` with ``{"error": error}``."""
    return Response(status, {"error": error})


class Receiver:
    """Turns one webhook request into a response and, for a tracked push, builds."""

    def __init__(self, secret: bytes, routes: list[Route], start_build: StartBuild, deliveries: DeliveryLedger,
                 older: OlderThanRunning, max_body: int = DEFAULT_MAX_BODY) -> None:
        if not secret:
            raise ValueError("the webhook secret is empty: refusing to accept unsigned hooks")
        self._secret = secret
        self.routes = routes
        self.start_build = start_build
        self.deliveries = deliveries
        self.older = older
        self.max_body = max_body

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"Receiver(routes={len(self.routes)}, max_body={self.max_body})"

    def precheck(self, headers: Mapping[str, str], content_length: int | None) -> Response | None:
        """What can be refused from the headers alone, before the body is read."""
        if content_length is not None and content_length > self.max_body:
            return refuse(413, f"body over the limit of {self.max_body} bytes")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return refuse(415, "content type must be application/json (set it in the hook's settings)")
        return None

    def handle(self, headers: Mapping[str, str], body: bytes) -> Response:
        """``headers`` with lower-case names; ``body`` the raw bytes, at most ``max_body`` (checked here too)."""
        early = self.precheck(headers, len(body))
        if early is not None:
            return early
        if not signature.verify(self._secret, body, headers.get("x-hub-signature-256")):
            log.warning("refused a webhook with a missing or wrong X-Hub-Signature-256")
            return refuse(401, "missing or wrong X-Hub-Signature-256")
        event = headers.get("x-github-event", "")
        delivery = headers.get("x-github-delivery", "")
        if not _EVENT.match(event) or not _DELIVERY.match(delivery):
            return refuse(400, "missing or malformed X-GitHub-Event or X-GitHub-Delivery header")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return refuse(400, "body is not valid JSON")
        if not isinstance(payload, dict):
            return refuse(400, "body must be a JSON object")
        if event == "ping":
            hook_id = payload.get("hook_id")
            return Response(200, {"pong": True, "hook_id": hook_id if isinstance(hook_id, int) else None})
        if event != "push":
            # GitHub shows any non-2xx as a failed delivery: an event this hook was subscribed
            # to but Skynet does not act on is accepted and ignored, not an error.
            return Response(202, {"ignored": f"event {event} is not acted on; only push and ping are"})
        return self.push(delivery, payload)

    def push(self, delivery: str, payload: dict[str, Any]) -> Response:
        """Start a build for each group that tracks the pushed branch, once per delivery and once per push.

        202 with the builds started (a redelivery: the first answer; the same push under another
        delivery id: "already received", nothing started; a commit older than the group's running
        release and not forced: "older than the running release", nothing started), or with what
        was ignored and why; 400 for a malformed payload; 503 if a build could not be enqueued.
        """
        try:
            ref, after = payload["ref"], payload["after"]
            full_name = payload["repository"]["full_name"]
            if not isinstance(ref, str) or not isinstance(after, str):
                raise TypeError
            check_repository(full_name)
            check_sha(after)
        except (KeyError, TypeError):
            return refuse(400, "push payload misses ref, after or repository.full_name")
        except BadName as error:
            return refuse(400, str(error))
        if not ref.startswith("refs/heads/"):
            return Response(202, {"ignored": "not a branch push (a tag or another ref)"})
        try:
            branch = check_branch(ref.removeprefix("refs/heads/"))
        except BadName as error:
            return refuse(400, str(error))
        if payload.get("deleted") is True or after == ZERO_SHA:
            return Response(202, {"ignored": f"branch {branch} was deleted"})
        commits = payload.get("commits")
        if commits is not None and not isinstance(commits, list):
            return refuse(400, "commits must be a list")
        if not commits and payload.get("head_commit") is None:
            return Response(202, {"ignored": "push without commits"})
        routes = match(self.routes, full_name, branch)
        if not routes:
            return Response(202, {"ignored": f"{full_name} {branch} is not tracked by any group"})
        forced, before = payload.get("forced", False), payload.get("before")
        if not isinstance(forced, bool):
            return refuse(400, "forced must be true or false")
        if not isinstance(before, str) or not names.SHA.match(before):
            return refuse(400, "before must be a full commit id")
        pushed_at = payload["repository"].get("pushed_at")
        if isinstance(pushed_at, bool) or not isinstance(pushed_at, int):
            pushed_at = None  # GitHub sends it; a hook without it is keyed on the rest
        earlier = self.deliveries.claim(delivery)
        if earlier is not None:
            return Response(202, {**earlier, "duplicate": True})
        push = push_id(full_name, ref, before, after, pushed_at)
        first = self.deliveries.claim(push)
        if first is not None:  # the same push under a fresh delivery id: a replay, or GitHub's "redeliver"
            answer = {"delivery": delivery, "release": after, "duplicate": True, "builds": first.get("builds", []),
                      "ignored": f"already received: {full_name} {branch} at {after} came before"
                                 f"{' as delivery ' + first['delivery'] if 'builds' in first else ''}"}
            self.deliveries.record(delivery, answer)
            log.warning("delivery %s: %s %s at %s was received before; nothing started", delivery, full_name,
                        branch, after[:12])
            return Response(202, answer)
        try:
            answer = self._start(delivery, routes, after, forced)
        except Exception:
            self.deliveries.release(push)
            self.deliveries.release(delivery)
            log.exception("delivery %s: could not enqueue the build", delivery)
            return refuse(503, "could not enqueue the build; GitHub may redeliver")
        self.deliveries.record(push, answer)
        self.deliveries.record(delivery, answer)
        started = ", ".join(f"{b['group']}/{b['rollout_id']}" for b in answer["builds"]) or "nothing"
        log.info("delivery %s: %s %s at %s (forced: %s) started %s; older than what runs in %s", delivery,
                 full_name, branch, after[:12], forced, started, answer.get("older", "no group"))
        return Response(202, answer)

    def _start(self, delivery: str, routes: list[Route], after: str, forced: bool) -> dict[str, Any]:
        """Start the builds of ``after`` for ``routes`` whose group runs nothing newer; the answer to send.

        A forced push moved the branch back on purpose: it is built whatever the groups run.
        """
        older = [] if forced else [route.group for route in routes if self.older(route, after)]
        started = [self.start_build(route, after, forced) for route in routes if route.group not in older]
        answer: dict[str, Any] = {"delivery": delivery, "release": after, "builds": [
            {"group": s.group, "rollout_id": s.rollout_id, "release": s.release} for s in started]}
        if forced:
            answer["forced"] = True
        if older:
            answer["older"] = older
        if not started:
            answer["ignored"] = OLDER
        return answer
