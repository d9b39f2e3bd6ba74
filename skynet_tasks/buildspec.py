"""A repository's ``skynet.yml``: how it is built, installed, started and checked.

The file is trusted as far as the repository is (it is its owner's code), but it
is validated strictly so that a mistake gives a clear error naming the key,
never a traceback: unknown keys are errors, commands are argv lists (or strings
split with shlex) and never go through a shell. See the README for the format.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skynet_tasks.policy import PolicyError, RolloutPolicy, parse_policy
from skynet_tasks.stacks.recipes import UnknownRecipe, recipe


class BuildSpecError(ValueError):
    """``skynet.yml`` is missing or invalid."""


Command = tuple[str, ...]

_TOP = {"build", "build_timeout", "artifact", "hooks", "service", "health", "update_timeout", "stack", "rollout"}
_HOOKS = ("before_install", "after_install", "start", "validate")
_STACK = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_HTTP_PATH = re.compile(r"^/[\x21-\x7e]*$")


# The longest ``build_timeout`` a skynet.yml may ask for (the build task's limits leave room for it:
# ``tasks.build``).
MAX_BUILD_TIMEOUT = 3600


@dataclass(frozen=True)
class Hooks:
    """The commands run at each lifecycle step of an update, in order."""

    before_install: tuple[Command, ...] = ()
    after_install: tuple[Command, ...] = ()
    start: tuple[Command, ...] = ()
    validate: tuple[Command, ...] = ()


@dataclass(frozen=True)
class Service:
    """The command that runs the app."""

    command: Command


@dataclass(frozen=True)
class Health:
    """How an update checks the app: an HTTP path, a command, or both, within ``timeout`` seconds."""

    http: str | None = None
    command: Command | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class BuildSpec:
    """A repository's ``skynet.yml``: how to build, pack, install, run and check the app."""

    build: tuple[Command, ...] = ()
    build_timeout: float = 600.0
    artifact_exclude: tuple[str, ...] = ()
    hooks: Hooks = field(default_factory=Hooks)
    service: Service | None = None
    health: Health | None = None
    update_timeout: float = 300.0
    stack: str | None = None
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)


def _command(value: Any, where: str) -> Command:
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as error:
            raise BuildSpecError(f"{where}: {error}") from None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        argv = tuple(value)
    else:
        raise BuildSpecError(f"{where}: a command is a list of strings or a string")
    if not argv or not argv[0]:
        raise BuildSpecError(f"{where}: empty command")
    for arg in argv:
        if "\0" in arg or "\n" in arg or "\r" in arg:
            raise BuildSpecError(f"{where}: commands may not contain NUL or newline characters")
    return argv


def _commands(value: Any, where: str) -> tuple[Command, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BuildSpecError(f"{where}: expected a list of commands")
    return tuple(_command(v, f"{where}[{i}]") for i, v in enumerate(value))


def _seconds(value: Any, where: str, default: float, low: float, high: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BuildSpecError(f"{where}: expected a number of seconds between {low:g} and {high:g}")
    return float(value)


def _mapping(value: Any, where: str, allowed: set[str] | tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BuildSpecError(f"{where}: expected a mapping")
    unknown = sorted(set(value) - set(allowed), key=str)
    if unknown:
        raise BuildSpecError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    return value


def parse_buildspec(text: str) -> BuildSpec:
    """The build spec in the YAML ``text``; BuildSpecError naming the first problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise BuildSpecError(f"skynet.yml is not valid YAML{line}: {getattr(error, 'problem', error)}") from None
    if data is None:
        data = {}
    top = _mapping(data, "skynet.yml", _TOP)
    artifact = _mapping(top.get("artifact"), "artifact", {"exclude"})
    exclude = artifact.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(p, str) and p for p in exclude):
        raise BuildSpecError("artifact.exclude: expected a list of glob patterns")
    hooks = _mapping(top.get("hooks"), "hooks", _HOOKS)
    service_data = _mapping(top.get("service"), "service", {"command"})
    if top.get("service") is not None and "command" not in service_data:
        raise BuildSpecError("service: a command is required")
    health_data = _mapping(top.get("health"), "health", {"http", "command", "timeout"})
    http = health_data.get("http")
    if http is not None and (not isinstance(http, str) or not _HTTP_PATH.match(http)):
        raise BuildSpecError("health.http: expected a path starting with / without spaces or control characters")
    stack = top.get("stack")
    if stack is not None and (not isinstance(stack, str) or not _STACK.match(stack)):
        raise BuildSpecError("stack: a recipe name of lowercase letters, digits and dashes")
    try:
        chosen = recipe(stack) if stack is not None else None
    except UnknownRecipe as error:
        raise BuildSpecError(f"stack: {error}") from None
    health = None
    if top.get("health") is not None:
        health = Health(http=http, command=_command(health_data["command"], "health.command")
                        if health_data.get("command") is not None else None,
                        timeout=_seconds(health_data.get("timeout"), "health.timeout", 30, 1, 600))
    elif chosen is not None:
        health = Health(http=chosen.health_path, command=None, timeout=30)
    update_timeout = _seconds(top.get("update_timeout"), "update_timeout", 300, 1, 580)
    try:  # the bake and the progress deadline are checked against this release's update timeout
        policy = parse_policy(top.get("rollout"), update_timeout=update_timeout)
    except PolicyError as error:
        raise BuildSpecError(str(error)) from None
    service = Service(_command(service_data["command"], "service.command")) if service_data else None
    if service is None and chosen is not None:
        # The recipe's own service renders its templates and runs its processes (skynet_tasks.stacks.run).
        service = Service((sys.executable, "-m", "skynet_tasks.stacks.run", chosen.name))
    return BuildSpec(
        build=_commands(top.get("build"), "build"),
        build_timeout=_seconds(top.get("build_timeout"), "build_timeout", 600, 1, MAX_BUILD_TIMEOUT),
        artifact_exclude=tuple(exclude),
        hooks=Hooks(**{name: _commands(hooks.get(name), f"hooks.{name}") for name in _HOOKS}),
        service=service,
        health=health,
        update_timeout=update_timeout,
        stack=stack,
        rollout=policy,
    )


def load_buildspec(path: Path) -> BuildSpec:
    """The build spec in the file ``path``; BuildSpecError if it is missing or invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BuildSpecError("no skynet.yml at the repository root") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BuildSpecError(f"cannot read skynet.yml: {error}") from None
    return parse_buildspec(text)
