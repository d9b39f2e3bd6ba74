"""How a Skynet process writes its log: text or JSON lines, carrying the ids that place each line.

Every process (the CLI, the workers, the dashboard, the webhook receiver) sets up its logging
here, once, from ``--log-format`` / ``SKYNET_LOG_FORMAT`` and ``--log-level`` / ``SKYNET_LOG_LEVEL``.
A line carries, when they are known, the fields ``FIELDS``: ``instance``, ``group`` and ``role``
are the process's (``bind_process``), ``task``, ``rollout_id``, ``ticket`` and ``group`` the task's
being run (``bind_task``, from ``skynet_tasks.app``'s Celery signals). In JSON they are keys of
the line's object; in text they follow the message as ``[key=value …]``.

Trusted: the field values come from the process's settings and from task messages already
accepted by the task's own checks; JSON escapes them, and text shows them with ``repr`` when they
hold anything but plain id characters, so a value cannot forge a second log line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FIELDS = ("rollout_id", "ticket", "instance", "group", "role", "task")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PLAIN = re.compile(r"[A-Za-z0-9._:@/-]{1,200}")
# The task being run in this thread (a Celery pool process runs one at a time).
_task_fields: ContextVar[Mapping[str, Any]] = ContextVar("skynet_log_task_fields", default=MappingProxyType({}))


class ContextFilter(logging.Filter):
    """Adds the process's and the current task's fields to every record that passes its handler."""

    def __init__(self) -> None:
        super().__init__()
        self.process: dict[str, Any] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the known fields on ``record`` (never one the call set itself, with ``extra=``); keep it."""
        for key, value in {**self.process, **_task_fields.get()}.items():
            if value not in (None, "") and not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """The plain format, the known fields after the message as ``[key=value …]``."""

    def format(self, record: logging.LogRecord) -> str:
        """``record`` as one text line (plus its traceback, if any)."""
        text = super().format(record)
        known = [(key, getattr(record, key)) for key in FIELDS if getattr(record, key, None) not in (None, "")]
        if not known:
            return text
        fields = " ".join(f"{key}={_shown(value)}" for key, value in known)
        first, newline, rest = text.partition("\n")
        return f"{first} [{fields}]{newline}{rest}"


def _shown(value: Any) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) else repr(text)


def _json_formatter() -> logging.Formatter:
    # Imported here: an instance whose agent was updated without its dependencies still logs text.
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(["asctime", "levelname", "name", "message"],
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


class _SkynetHandler(logging.StreamHandler):
    """The one handler ``configure`` installs, so that a second call replaces it instead of adding one."""

    def __init__(self, log_format: str) -> None:
        super().__init__(sys.stderr)
        self.log_format = log_format
        self.context = ContextFilter()
        self.addFilter(self.context)
        self.setFormatter(_json_formatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))


def configure(level: str | int, log_format: str = "text") -> bool:
    """Send this process's log to standard error at ``level`` as ``log_format`` lines; whether it did.

    Like ``logging.basicConfig``, a root logger that something else gave handlers (a test runner,
    a program embedding Skynet) is left as it is, only its level set. Called again, it replaces
    its own handler, keeping the fields bound so far.
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    root = logging.getLogger()
    set_level(level)
    previous = _handler()
    if previous is None and root.handlers:
        return False
    handler = _SkynetHandler(log_format)
    if previous is not None:
        handler.context.process.update(previous.context.process)
        root.removeHandler(previous)
    root.addHandler(handler)
    logging.captureWarnings(True)  # a warning (Celery's about running as root, say) is a line in the format too
    return True


def set_level(level: str | int) -> None:
    """Change the level of this process's log, keeping its format and fields."""
    logging.getLogger().setLevel(level.upper() if isinstance(level, str) else level)


def current_format() -> str | None:
    """The format ``configure`` set up in this process, or None if it was not called."""
    handler = _handler()
    return handler.log_format if handler is not None else None


def bind_process(**fields: Any) -> None:
    """Fields every later line of this process carries (``instance``, ``group``, ``role``)."""
    handler = _handler()
    if handler is not None:
        handler.context.process.update({k: v for k, v in fields.items() if k in FIELDS})


def bind_task(fields: Mapping[str, Any]) -> None:
    """Fields the lines carry until ``unbind_task`` (the task being run: ``task``, ``rollout_id``…)."""
    _task_fields.set({k: v for k, v in fields.items() if k in FIELDS})


def unbind_task() -> None:
    """Forget the task's fields: the task is over."""
    _task_fields.set({})


@contextmanager
def task_fields(fields: Mapping[str, Any]) -> Iterator[None]:
    """The lines logged inside carry ``fields`` (as ``bind_task``), the previous ones after."""
    token = _task_fields.set({k: v for k, v in fields.items() if k in FIELDS})
    try:
        yield
    finally:
        _task_fields.reset(token)


def fields_of_task(name: str, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The log fields of a task ``name`` run with ``kwargs``: its rollout, ticket and group when they say.

    Looked for in the arguments, and in a build request's or a conductor event's body. The
    instance an event names is not this process's, so it is not taken.
    """
    fields: dict[str, Any] = {"task": name}
    kwargs = kwargs or {}
    bodies = [kwargs] + [kwargs[key] for key in ("request", "event") if isinstance(kwargs.get(key), Mapping)]
    for body in bodies:
        rollout = body.get("rollout")
        if isinstance(rollout, Mapping) and isinstance(rollout.get("id"), str):
            fields.setdefault("rollout_id", rollout["id"])
            if isinstance(rollout.get("group"), str):
                fields.setdefault("group", rollout["group"])
        for key in ("rollout_id", "ticket", "group"):
            if isinstance(body.get(key), str | int) and not isinstance(body.get(key), bool):
                fields.setdefault(key, body[key])
    return fields


def _handler() -> _SkynetHandler | None:
    return next((h for h in logging.getLogger().handlers if isinstance(h, _SkynetHandler)), None)
