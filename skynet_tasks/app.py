"""The Celery application of Skynet, configured from ``celeryconfig`` with the process's Settings.

Importing this module only creates the tasks' app object (``skynet_tasks.tasks`` binds to it).
Its configuration comes from the ``Settings`` its process built at start, given to
``configure``; until then any use of its configuration is an error, never Celery's
defaults (an AMQP broker on localhost).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun

import celeryconfig
from skynet_tasks import logformat
from skynet_tasks.settings import Settings, SettingsError


class _NotConfigured(Mapping[str, Any]):
    """Celery reads its configuration lazily, at first use: this makes that use before ``configure`` fail."""

    def _refuse(self, *_: object) -> NoReturn:
        raise SettingsError("Skynet's Celery app was used before its process built its settings "
                            "(skynet_tasks.app.configure)")

    def __getitem__(self, key: str) -> Any:
        self._refuse()

    def __iter__(self) -> Iterator[str]:
        self._refuse()

    def __len__(self) -> int:
        self._refuse()


def configure(celery_app: Celery, settings: Settings, members_topic: str | None = None) -> Celery:
    """Give ``celery_app`` Skynet's configuration for ``settings`` (and its group's topic, if any); return it."""
    celery_app.config_from_object(celeryconfig.config(settings, members_topic), force=True)
    return celery_app


def create_app(settings: Settings | None = None) -> Celery:
    """A new Skynet Celery app for ``settings`` (built from the environment now, strictly, if not given)."""
    return configure(Celery("skynet"), settings if settings is not None else Settings.from_env())


def settings_of(celery_app: Celery) -> Settings:
    """The Settings ``celery_app`` was configured with."""
    settings = celery_app.conf.get("skynet_settings")
    if not isinstance(settings, Settings):
        raise SettingsError("Skynet's Celery app has no settings: configure it first (skynet_tasks.app.configure)")
    return settings


def keep_skynet_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Celery's ``setup_logging``: keep the process's own log format (``skynet_tasks.logformat``), set the level.

    Connected, it stops Celery from setting up logging its own way, which includes sending what
    a task prints to the log: done here instead, so that printed lines get the format too.
    """
    if logformat.current_format() is None:
        logformat.configure(loglevel or "INFO")
    elif loglevel:
        logformat.set_level(loglevel)
    if app.conf.worker_redirect_stdouts:
        app.log.redirect_stdouts(app.conf.worker_redirect_stdouts_level)


def bind_task_fields(task: Any = None, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    """Celery's ``task_prerun``: the task's lines carry its name, rollout, ticket and group."""
    logformat.bind_task(logformat.fields_of_task(getattr(task, "name", "") or "", kwargs))


def unbind_task_fields(**_: Any) -> None:
    """Celery's ``task_postrun``: the task is over, its fields go."""
    logformat.unbind_task()


setup_logging.connect(keep_skynet_logging, weak=False)
task_prerun.connect(bind_task_fields, weak=False)
task_postrun.connect(unbind_task_fields, weak=False)

app = Celery("skynet")
app.config_from_object(_NotConfigured())
