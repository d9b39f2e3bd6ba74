"""The Celery application of Skynet, configured from ``celeryconfig``."""

from __future__ import annotations

from celery import Celery


def create_app() -> Celery:
    app = Celery("skynet")
    app.config_from_object("celeryconfig")
    app.conf.include = ["skynet_tasks.tasks"]
    return app


app = create_app()
