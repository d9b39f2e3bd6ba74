"""The dashboard's HTTP answers that are not pages: JSON bodies, JSON errors, plain-text logs."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from skynet_tasks.monitor.data import NotFound


def json_response(status: int, body: Any) -> Response:
    """``body`` as JSON with ``status``."""
    response = jsonify(body)
    response.status_code = status
    return response


def error_response(status: int, message: str) -> Response:
    """``{"error": message}`` with ``status``."""
    return json_response(status, {"error": message})


def text_response(text: str | None) -> Response:
    """A log as plain text; NotFound when none is stored."""
    if text is None:
        raise NotFound("no log stored")
    return Response(text, mimetype="text/plain")
