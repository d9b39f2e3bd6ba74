"""What the app is: its command, working folder and environment, kept in ``ROOT/run/app.json``.

The worker writes this file each time it (re)starts the app; whatever runs the app
reads it, so a restart after a crash runs exactly what the worker last asked for:
``skynet-app.service`` executes ``python -m skynet_tasks.appspec FILE`` (systemd
restarts it), and the local supervisor (``skynet_tasks.supervisor``) starts the
command itself.

The file holds the app's environment, so it is written with mode 0600.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class AppSpecError(ValueError):
    """An app specification that is missing or malformed."""


@dataclass(frozen=True)
class AppSpec:
    """What runs as the app: its command, working directory and environment."""

    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]

    @classmethod
    def of(cls, command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> AppSpec:
        """A checked specification: a non-empty command of strings, string environment values."""
        if not command or not all(isinstance(part, str) and part for part in command):
            raise AppSpecError(f"the app's command must be a non-empty list of non-empty strings, not {command!r}")
        if not all(isinstance(k, str) and isinstance(v, str) and k and "=" not in k for k, v in env.items()):
            raise AppSpecError("the app's environment must map variable names to strings")
        return cls(tuple(command), Path(cwd), dict(env))

    def to_json(self) -> str:
        """The specification as the JSON text ``app.json`` holds."""
        return json.dumps({"command": list(self.command), "cwd": str(self.cwd), "env": dict(self.env)}, indent=1)


def write_spec(path: Path, spec: AppSpec) -> None:
    """Replace ``path`` with ``spec`` atomically (a temporary file renamed over it), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(spec.to_json())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_spec(path: Path) -> AppSpec:
    """The specification in ``path``; AppSpecError when it is missing or malformed."""
    try:
        data = json.loads(path.read_text())
        return AppSpec.of(data["command"], Path(data["cwd"]), data["env"])
    except OSError as error:
        raise AppSpecError(f"cannot read the app's specification {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise AppSpecError(f"the app's specification {path} is malformed: {error!r}") from None


def exec_spec(spec: AppSpec) -> None:
    """Become the app: change to its folder and execute its command with its environment (no return)."""
    os.chdir(spec.cwd)
    os.execvpe(spec.command[0], list(spec.command), dict(spec.env))  # noqa: S606  # nosec B606 - the worker's spec


def main() -> None:
    """``python -m skynet_tasks.appspec FILE``: the ExecStart of ``skynet-app.service``."""
    if len(sys.argv) != 2:
        sys.exit("usage: python -m skynet_tasks.appspec SPEC_FILE")
    try:
        exec_spec(read_spec(Path(sys.argv[1])))
    except (AppSpecError, OSError) as error:
        sys.exit(f"app: {error}")


if __name__ == "__main__":
    main()
