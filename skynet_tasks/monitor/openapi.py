"""The OpenAPI 3 description of the dashboard's JSON API (served at /api/openapi.json)."""

from __future__ import annotations

from typing import Any

from skynet_tasks.conductor import OPERATOR_ACTIONS

_NAME = {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"}
_ROLLOUT_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"}
# A release is named by its full commit id: ``names.SHA``, in JSON Schema's (ECMA 262) regex
# dialect, which has no \A or \Z.
_SHA = {"type": "string", "pattern": "^[0-9a-f]{40}$"}
_ERROR = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_OBJECT = {"type": "object", "additionalProperties": True}
_LIST = {"type": "array", "items": _OBJECT}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _param(name: str, schema: dict[str, Any], where: str = "path", required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema}


def _get(summary: str, schema: dict[str, Any], params: list[dict[str, Any]] | None = None,
         not_found: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json(summary, schema)}
    if not_found or params:
        responses["404"] = _ERROR
    return {"get": {"summary": summary, "parameters": params or [], "responses": responses}}


def _action(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "parameters": params, "security": [{"bearer": []}, {"basic": []}],
        "description": "Needs the dashboard token and the header X-Skynet-Request: 1 (cross-site protection).",
        "responses": {"202": _json("Requested; recorded with who and when", _OBJECT),
                      "401": _ERROR, "403": _ERROR, "404": _ERROR, "409": _ERROR}}}


# ``monitor.actions.deploy_request``: every key but ``ref`` optional, left out (or null, or "") for skynet.yml's.
_DURATION = {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "example": "30s"}]}
_DEPLOY = {"type": "object", "required": ["ref"], "additionalProperties": False, "properties": {
    "ref": {"type": "string", "maxLength": 255, "description": "Branch, tag or commit sha to deploy"},
    "max_parallel": {"oneOf": [{"type": "string", "example": "1,2,25%"}, {"type": "integer", "minimum": 1},
                               {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}]},
    "min_healthy_time": _DURATION, "progress_deadline": _DURATION, "promote_timeout": _DURATION,
    "on_failure": {"type": "string", "enum": ["halt", "revert"]},
    "canary": {"type": "string", "enum": ["auto", "manual"]},
    "windows": {"oneOf": [{"type": "string", "description": "one window a line: DAYS HH:MM-HH:MM [TZ]"},
                          {"type": "array", "items": {"type": "string",
                                                      "example": "mon-fri 09:00-17:00 Europe/Paris"}}]},
    "now": {"type": "boolean", "description": "Start outside the maintenance windows (audited)"}}}


def _deploy() -> dict[str, Any]:
    operation = _action("Build a ref and roll it out to the group, with its skynet.yml's policy or the one given",
                        [_param("group", _NAME)])
    operation["post"]["requestBody"] = {"required": True, "content": {"application/json": {"schema": _DEPLOY}}}
    operation["post"]["responses"]["400"] = _ERROR
    return operation


def _text(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params, "responses": {
        "200": {"description": "The log", "content": {"text/plain": {"schema": {"type": "string"}}}},
        "404": _ERROR}}}


def openapi_document() -> dict[str, Any]:
    """The description, built fresh (callers may serialize or change their copy)."""
    group = _param("group", _NAME)
    instance = _param("instance", _NAME)
    rollout = _param("rollout_id", _ROLLOUT_ID)
    group_query = _param("group", _NAME, "query", required=False)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Skynet dashboard API", "version": "1",
                 "description": "Groups, instances, rollouts, releases, queues and task runs of one env; "
                                "operator actions."},
        "paths": {
            "/api/status": _get("Groups with instances and recent rollouts", _OBJECT),
            "/api/groups": _get("Every group", _LIST),
            "/api/groups/{group}": _get("One group, with its recent operator actions", _OBJECT, [group]),
            "/api/groups/{group}/actions": _get("Operator actions on a group, newest first", _LIST, [group]),
            "/api/groups/{group}/rollback": _action("Roll the group back to its previous good release", [group]),
            "/api/groups/{group}/deploy": _deploy(),
            "/api/instances": _get("Every registered instance", _LIST),
            "/api/instances/{instance}/drain": _action("Take an instance out of the proxy", [instance]),
            "/api/instances/{instance}/undrain": _action("Put a drained instance back into the proxy", [instance]),
            "/api/changes": _get("A token that changes when the env does; waits up to `wait` seconds for a change "
                                 "from `since`", _OBJECT, [_param("since", {"type": "string", "maxLength": 64}, "query",
                                                                   required=False),
                                                            _param("wait", {"type": "integer", "minimum": 0,
                                                                            "maximum": 25}, "query", required=False)]),
            "/api/rollouts": _get("Recent rollouts, newest first", _LIST, [group_query]),
            "/api/rollouts/{rollout_id}": _get("A rollout's ticket timeline and its failing ticket's log", _OBJECT,
                                               [rollout]),
            "/api/rollouts/{rollout_id}/tickets/{number}/log": _text(
                "A ticket's update log", [rollout, _param("number", {"type": "integer", "minimum": 1,
                                                                     "maximum": 100000})]),
            **{f"/api/rollouts/{{rollout_id}}/{action}": _action(f"{action.capitalize()} the rollout", [rollout])
               for action in OPERATOR_ACTIONS},
            "/api/releases": _get("Builds, newest first", _LIST, [group_query]),
            "/api/releases/{group}/{sha}/log": _text("A build log", [group, _param("sha", _SHA)]),
            "/api/queues": _get("Depth, in-flight and dead-letter depth of every queue", _LIST),
            "/api/tasks": _get("Recent task runs", _LIST, [_param("instance", _NAME, "query", required=False)]),
        },
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string"}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"}},
        },
    }
