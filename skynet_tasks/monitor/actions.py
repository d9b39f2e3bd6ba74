"""The dashboard's operator actions: a rollout's pause, resume, retry, abort and promote, a group's rollback and
deploy, an instance's drain and undrain.

Each goes through ``skynet_tasks.operator`` or ``skynet_tasks.deploys``, exactly as the CLI's do, once
``skynet_tasks.monitor.auth`` has accepted the request: an operator's token (a read-only one is refused)
and a same-origin request (``check_same_origin``). Every accepted action is in the group's audit trail
with its actor. The request's path and body are untrusted: names are checked as names, a deploy's
body by the same parser as ``skynet deploy``'s options (``policy_overrides``), and a bad one is a 400
with nothing recorded or sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from prometheus_client import Counter

from skynet_tasks.conductor import OPERATOR_ACTIONS
from skynet_tasks.deploys import DeployError, deploy_ref
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.monitor.auth import Auth, Refused, check_same_origin
from skynet_tasks.monitor.data import NotFound, check_part, check_rollout_id
from skynet_tasks.monitor.responses import error_response as _error
from skynet_tasks.monitor.responses import json_response as _json
from skynet_tasks.operator import OperatorError, drain_instance, rollback, rollout_action
from skynet_tasks.policy import PolicyError
from skynet_tasks.policy_overrides import OVERRIDABLE, RolloutOverrides, parse_overrides, typed_ramp
from skynet_tasks.registry import Registry

log = logging.getLogger(__name__)

# A deploy's body: the ref, the policy overrides (each left out, null or "" for skynet.yml's) and ``now``.
DEPLOY_KEYS = ("ref", *OVERRIDABLE, "now")
MAX_REF = 255


class BadRequest(ValueError):
    """An action's request that breaks a rule (the message says which); answered 400, nothing done."""


def deploy_request(body: Any) -> tuple[str, RolloutOverrides, bool]:
    """The ref, overrides and ``now`` of a deploy's JSON ``body`` (the dashboard's form, or an API caller's);
    BadRequest naming the key and the rule if invalid.

    As the form sends them, ``max_parallel`` may be comma-separated text (``1,2,25%``) and ``windows`` one
    window a line; as skynet.yml has them, a list.
    """
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object with the key(s) {', '.join(DEPLOY_KEYS)}")
    unknown = sorted(str(k) for k in set(body) - set(DEPLOY_KEYS))
    if unknown:
        raise BadRequest(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(DEPLOY_KEYS)})")
    ref = body.get("ref")
    if not isinstance(ref, str) or not ref.strip() or len(ref) > MAX_REF:
        raise BadRequest(f"ref: expected a branch, tag or commit sha (at most {MAX_REF} characters)")
    now = body.get("now", False)
    if not isinstance(now, bool):
        raise BadRequest("now: expected true or false")
    given = {key: value.strip() if isinstance(value, str) else value
             for key, value in body.items() if key in OVERRIDABLE and value not in (None, "")}
    if "max_parallel" in given:
        given["max_parallel"] = typed_ramp(given["max_parallel"])
    if isinstance(given.get("windows"), str):
        given["windows"] = [line.strip() for line in given["windows"].splitlines() if line.strip()]
    try:
        return ref.strip(), parse_overrides(given, "deploy", {key: key for key in OVERRIDABLE}), now
    except PolicyError as error:
        raise BadRequest(str(error)) from None


def add_action_routes(app: Flask, auth: Auth, ledger: Ledger, registry: Registry, messenger: Messenger, env: str,
                      counter: Counter, changed: Callable[[], object]) -> None:
    """Register the action routes on ``app``, counting each outcome in ``counter``; ``changed`` wakes the
    pages' live refresh when one is accepted."""

    def act(name: str, do: Callable[[str], dict[str, Any]]) -> Response:
        try:
            actor = auth.actor(request.headers.get("Authorization"))
            check_same_origin(dict(request.headers), request.host_url)
        except Refused as refused:
            counter.labels(name, "refused").inc()
            log.warning("action %s refused (%d): %s", name, refused.status, refused)
            response = _error(refused.status, str(refused))
            if refused.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="skynet"'
            return response
        try:
            result = do(actor)
        except BadRequest as error:
            counter.labels(name, "rejected").inc()
            return _error(400, str(error))
        except (OperatorError, DeployError) as error:
            counter.labels(name, "rejected").inc()
            return _error(409, str(error))
        counter.labels(name, "accepted").inc()
        changed()
        log.info("action %s by %s accepted", name, actor)
        return _json(202, result)

    @app.post("/api/rollouts/<rollout_id>/<action>")
    def api_rollout_action(rollout_id: str, action: str) -> Response:
        if action not in OPERATOR_ACTIONS:
            raise NotFound(f"no action {action!r}; choose one of {', '.join(OPERATOR_ACTIONS)}")
        check_rollout_id(rollout_id)
        return act(action, lambda actor: rollout_action(ledger, messenger, rollout_id, action, actor).__dict__)

    @app.post("/api/groups/<group>/rollback")
    def api_rollback(group: str) -> Response:
        check_part("group", group)
        return act("rollback", lambda actor: rollback(ledger, messenger, group, actor).__dict__)

    def deploy(group: str, actor: str) -> dict[str, Any]:
        ref, overrides, now = deploy_request(request.get_json(silent=True))
        started = deploy_ref(ledger, messenger, group, ref, source=f"dashboard by {actor}", overrides=overrides,
                             ignore_windows=now)
        record = {"group": group, "rollout_id": started.rollout_id, "action": "deploy --now" if now else "deploy",
                  "actor": actor, "at": time.time(), "release": started.release, "ref": ref,
                  **({"overrides": overrides.given()} if overrides.given() else {})}
        ledger.record_action(group, record)
        return record

    @app.post("/api/groups/<group>/deploy")
    def api_deploy(group: str) -> Response:
        check_part("group", group)
        return act("deploy", lambda actor: deploy(group, actor))

    def drain(instance: str, undo: bool) -> Response:
        check_part("instance id", instance)
        return act("undrain" if undo else "drain", lambda actor: drain_instance(
            ledger, registry, messenger, env, instance, actor, undo=undo).__dict__)

    app.add_url_rule("/api/instances/<instance>/drain", "api_drain", lambda instance: drain(instance, False),
                     methods=["POST"])
    app.add_url_rule("/api/instances/<instance>/undrain", "api_undrain", lambda instance: drain(instance, True),
                     methods=["POST"])
