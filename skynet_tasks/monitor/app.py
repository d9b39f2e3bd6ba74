"""The dashboard as a Flask application: HTML pages, the JSON API, /metrics and operator actions.

Pages are rendered on the server; their script re-fetches the page's main part
(``?partial=1``) when ``/api/changes`` says the env changed, and only while the tab
is visible (``skynet_tasks.monitor.changes``), so they update live without a
reload and without a build step. The operator actions are in ``skynet_tasks.monitor.actions``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from celery import Celery
from flask import Flask, Response, g, jsonify, redirect, render_template, request
from markupsafe import Markup
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.aws import Aws
from skynet_tasks.conductor import OPERATOR_ACTIONS
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.monitor.actions import add_action_routes
from skynet_tasks.monitor.auth import Auth, Refused
from skynet_tasks.monitor.changes import MAX_WAITERS, ChangeWatch, EnvFingerprint, changes_body
from skynet_tasks.monitor.charts import HISTORY_ROLLOUTS, add_chart_routes, fleet_of
from skynet_tasks.monitor.data import MonitorData, NotFound
from skynet_tasks.monitor.filters import FILTERS
from skynet_tasks.monitor.metrics import make_registry
from skynet_tasks.monitor.openapi import openapi_document
from skynet_tasks.monitor.queue_cache import QueuesUnreadable
from skynet_tasks.monitor.responses import error_response as _error
from skynet_tasks.monitor.responses import text_response as _text
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Registry
from skynet_tasks.resources import EnvResources
from skynet_tasks.taskruns import TaskRuns

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
PAGES = ("groups", "instances", "rollouts", "releases", "queues", "tasks")
# Answered without a token even when reads are protected: a liveness probe, which says only
# that the server answers and for which env.
OPEN_PATHS = frozenset({"/health"})


def create_app(resources: EnvResources, aws: Aws, celery_app: Celery, auth: Auth, max_age: float,
               allowed_hosts: tuple[str, ...] | None = None, poll_seconds: float = POLL_SECONDS,
               long_polls: int = MAX_WAITERS) -> Flask:
    """The dashboard of the env ``resources`` names (its tables, its repo bucket for the logs).

    ``allowed_hosts``, when given, are the only Host names served (a loopback
    dashboard names its loopback names, so a DNS-rebound page cannot read it);
    the env is probed for changes at most every ``poll_seconds`` (for every open tab at once), and
    at most ``long_polls`` requests wait for a change at a time (each holds a server thread).
    """
    env = resources.env
    ledger = Ledger(aws.dynamodb, resources.state_table)
    registry = Registry(aws.dynamodb, resources.endpoints_table)
    data = MonitorData(ledger, registry, Queues(aws.sqs), ArtifactStore(aws.s3, resources.repo_bucket),
                       TaskRuns(aws.dynamodb, resources.state_table), env, max_age)
    messenger = Messenger(celery_app, env)
    metrics, action_counter = make_registry(data)
    watch = ChangeWatch(EnvFingerprint(data), poll_seconds, long_polls)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.extensions["skynet_monitor"] = data  # its reads and queue cache, for tests and benchmarks
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals.update(env=env, pages=PAGES, poll_ms=int(poll_seconds * 1000))
    add_chart_routes(app, data)

    @app.before_request
    def check_host() -> Response | None:
        if allowed_hosts is not None and request.host.rsplit(":", 1)[0].strip("[]") not in allowed_hosts:
            return _error(400, "unexpected Host header")
        return None

    @app.before_request
    def check_reader() -> Response | None:
        # Before routing's outcome is used: an unknown path is refused like a known one, so
        # without a token nobody learns which routes exist.
        if request.path in OPEN_PATHS:
            return None
        try:
            auth.reader(request.headers.get("Authorization"))
        except Refused as refused:
            response = _error(refused.status, str(refused))
            # Basic, so that a browser asks for the token (as the password) and sends it on every read.
            response.headers["WWW-Authenticate"] = 'Basic realm="skynet", charset="UTF-8"'
            return response
        return None

    @app.before_request
    def note_change_token() -> None:
        # Taken before a full page reads the env: the page then refreshes only when the env changes after
        # this token (a refresh for nothing would swap the page under a reader's, or a test's, fingerprint).
        if request.path.strip("/").split("/")[0] in PAGES and request.args.get("partial") != "1":
            g.change_token = watch.token()

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(NotFound)
    def not_found(error: NotFound) -> Response:
        return _error(404, str(error))

    @app.errorhandler(QueuesUnreadable)
    def queues_unreadable(error: QueuesUnreadable) -> Response:
        return _error(503, str(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _error(error.code or 500, error.description or error.name)

    # ---- pages ------------------------------------------------------------------
    def dead_letters() -> list[dict[str, Any]] | None:
        # None when SQS cannot be read: the pages still show what the tables hold.
        try:
            return [asdict(count) for count in data.dead_letters()]
        except (ClientError, BotoCoreError) as error:
            log.warning("dead-letter queues of env %s unreadable: %s", env, error)
            return None

    def alarm_banner() -> str:
        # Part of every page's main part, so the live refresh raises and clears it too.
        found = dead_letters()
        return render_template("alarm.html", dead=[c for c in found or () if c["messages"]], unread=found is None)

    def page(template: str, **context: Any) -> str:
        main = alarm_banner() + render_template(template, **context)
        if request.args.get("partial") == "1":
            return main
        body = Markup(main)  # noqa: S704  # nosec B704 - rendered by our autoescaping templates
        return render_template("base.html", main=body, title=context.get("title", template),
                               change_token=g.get("change_token", ""))

    @app.get("/")
    def index() -> Any:
        return redirect("/groups")

    @app.get("/health")
    def health() -> Response:
        return jsonify({"ok": True, "env": env})

    @app.get("/groups")
    def groups_page() -> str:
        return page("groups.html", title="groups", status=data.status(HISTORY_ROLLOUTS))

    @app.get("/instances")
    def instances_page() -> str:
        return page("instances.html", title="instances", instances=data.instances())

    @app.get("/rollouts")
    def rollouts_page() -> str:
        return page("rollouts.html", title="rollouts", rollouts=data.rollouts(limit=20))

    @app.get("/rollouts/<rollout_id>")
    def rollout_page(rollout_id: str) -> str:
        return page("rollout.html", title=f"rollout {rollout_id}", rollout=data.rollout(rollout_id),
                    actions=OPERATOR_ACTIONS)

    @app.get("/releases")
    def releases_page() -> str:
        return page("releases.html", title="releases", releases=data.releases(), fleet=fleet_of(data))

    @app.get("/queues")
    def queues_page() -> str:
        return page("queues.html", title="queues", queues=data.queue_depths())

    @app.get("/tasks")
    def tasks_page() -> str:
        instance = request.args.get("instance") or None
        return page("tasks.html", title="tasks", runs=data.task_runs(instance, 20), instance=instance)

    # ---- JSON API ---------------------------------------------------------------
    @app.get("/api/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document())

    @app.get("/api/status")
    def api_status() -> Response:
        return jsonify({**data.status(), "dead_letters": dead_letters()})

    @app.get("/api/groups")
    def api_groups() -> Response:
        return jsonify(data.status()["groups"])

    @app.get("/api/groups/<group>")
    def api_group(group: str) -> Response:
        return jsonify(data.group(group))

    @app.get("/api/groups/<group>/actions")
    def api_actions(group: str) -> Response:
        return jsonify(data.actions(group))

    @app.get("/api/instances")
    def api_instances() -> Response:
        return jsonify(data.instances())

    @app.get("/api/rollouts")
    def api_rollouts() -> Response:
        return jsonify(data.rollouts(request.args.get("group") or None))

    @app.get("/api/rollouts/<rollout_id>")
    def api_rollout(rollout_id: str) -> Response:
        return jsonify(data.rollout(rollout_id))

    @app.get("/api/rollouts/<rollout_id>/tickets/<int:number>/log")
    def api_ticket_log(rollout_id: str, number: int) -> Response:
        return _text(data.ticket_log(rollout_id, number))

    @app.get("/api/releases")
    def api_releases() -> Response:
        return jsonify(data.releases(request.args.get("group") or None))

    @app.get("/api/releases/<group>/<sha>/log")
    def api_release_log(group: str, sha: str) -> Response:
        return _text(data.release_log(group, sha))

    @app.get("/api/queues")
    def api_queues() -> Response:
        return jsonify([q.__dict__ for q in data.queue_depths()])

    @app.get("/api/tasks")
    def api_tasks() -> Response:
        return jsonify(data.task_runs(request.args.get("instance") or None, 20))

    @app.get("/api/changes")
    def api_changes() -> Response:
        # ``since`` and ``wait`` are untrusted: any string is just a token that differs; the wait is bounded.
        wait = request.args.get("wait", "0")
        token, waited = watch.wait(request.args.get("since", "")[:64], float(wait) if wait.isdigit() else 0.0)
        return jsonify(changes_body(token, waited, int(poll_seconds * 1000)))

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics), mimetype=CONTENT_TYPE_LATEST)

    add_action_routes(app, auth, ledger, registry, messenger, env, action_counter, watch.bump)

    return app
