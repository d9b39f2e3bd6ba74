"""Skynet's own settings, read once from the environment into a frozen object.

AWS settings (endpoint, region, credentials) are deliberately not here: boto3
and kombu read ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` and the credentials
chain themselves. On EC2, ``workers.identity`` fills the instance's identity
from instance metadata and tags before these settings are read.

This module is also the one place that touches the process's environment otherwise: what a child
process inherits (``child_environment``), the inputs of an entry point that another program gives it
there (``process_environment``), and the values a local cluster gives this process for the libraries that
read them (``export``). None of them reads a setting: a child reads its own at its start.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from skynet_tasks import names
from skynet_tasks.addresses import ip_address
from skynet_tasks.variables import BY_NAME, VARIABLES, Variable


def process_environment() -> dict[str, str]:
    """A copy of this process's environment, for an entry point whose inputs another program put there
    (``stacks.run``: the app's variables, which it checks itself) and for the children it starts."""
    return dict(os.environ)


def child_environment(keep: Collection[str] | None = None, **extra: str) -> dict[str, str]:
    """The environment a child process starts with: this process's (only the names in ``keep``, if given),
    then ``extra``. Passed on as it is, not read here."""
    inherited = process_environment()
    if keep is not None:
        inherited = {k: inherited[k] for k in keep if k in inherited}
    return {**inherited, **extra}


def export(values: Mapping[str, str]) -> None:
    """Make ``values`` part of this process's environment from now on: a local cluster's AWS endpoint and
    credentials, for boto3 and kombu, which read them there (and for the children this process starts)."""
    os.environ.update(values)


class SettingsError(ValueError):
    """A setting is missing or has a value Skynet cannot use."""


def check_names(environ: Mapping[str, str]) -> None:
    """Raise SettingsError naming every ``SKYNET_*`` variable that is not declared (with the nearest name)."""
    problems = []
    for key in sorted(k for k in environ if k.startswith("SKYNET_") and k not in BY_NAME):
        # Compared without the prefix every name shares, which would make any two names look alike.
        near = difflib.get_close_matches(key.removeprefix("SKYNET_"), [n.removeprefix("SKYNET_") for n in BY_NAME], n=1)
        problems.append(f"{key} is not a Skynet variable" + (f" (did you mean SKYNET_{near[0]}?)" if near else ""))
    if problems:
        raise SettingsError("; ".join(problems) + ": see docs/configuration.md, \"Every variable\"")


def parse(variable: Variable, raw: str) -> object:
    """The value of ``variable`` written as ``raw``; SettingsError naming it if it cannot be used."""
    shown = "(hidden)" if variable.secret else repr(raw)
    if variable.kind in ("number", "integer"):
        try:
            value: float = int(raw) if variable.kind == "integer" else float(raw)
        except ValueError:
            what = "an integer" if variable.kind == "integer" else "a number"
            raise SettingsError(f"{variable.name}={shown} is not {what}") from None
        if variable.low is not None and variable.high is not None and not variable.low <= value <= variable.high:
            raise SettingsError(f"{variable.name}={shown} is out of range [{variable.range}]")
        return value
    if variable.kind == "address":
        # It is registered for the proxies to reach and a proxy's nginx listens on it: an IP address only.
        try:
            return ip_address(raw).compressed
        except ValueError as error:
            raise SettingsError(f"{variable.name}={shown}: {error}") from None
    if variable.kind == "name":
        try:
            return names.check_name_part(variable.name, raw)
        except ValueError as error:
            raise SettingsError(str(error)) from None
    return Path(raw) if variable.kind == "path" else raw


def parse_environment(environ: Mapping[str, str]) -> dict[str, object]:
    """Every declared variable's value (its default when unset or empty), by name; refuses unknown names."""
    check_names(environ)
    values: dict[str, object] = {}
    for variable in VARIABLES:
        raw = environ.get(variable.name) or variable.default
        values[variable.name] = parse(variable, raw) if raw else ""
    return values


@dataclass(frozen=True)
class Settings:
    """Everything an instance or an operator command needs to know about its place.

    One field per declared setting (``skynet_tasks.variables``, where each variable's
    default, range and meaning are); the defaults here are the declared ones.
    """

    env: str = "local"
    layer: str = "api"
    group: str = "local-api"
    instance_id: str = ""
    root: Path = Path("/srv/skynet")
    config_dir: Path = Path("/etc/config")
    repo: str = ""
    branch: str = "main"
    address: str = "127.0.0.1"
    app_port: int = 8000
    # Only what was set explicitly (an instance's user-data sets both); empty means "derive it":
    # read bucket names through skynet_tasks.resources.resolve, never from here.
    config_bucket: str = ""
    repo_bucket: str = ""
    heartbeat_interval: float = 60.0
    heartbeat_max_age: float = 600.0
    poll_wait: int = 20
    poll_interval: float = 0.0
    keep_releases: int = 5
    rp_poll_interval: float = 30.0
    # Longer than a long poll (20 s), far shorter than the instance queue's visibility timeout (900 s).
    build_nudge_after: float = 45.0
    proxy_drain_wait: float = 10.0
    broker_url: str = "sqs://"
    lifecycle_hook: str = ""
    webhook_upstream: str = ""
    webhook_secret_arn: str = ""
    webhook_secret_file: str = ""
    webhook_secret: str = field(default="", repr=False)  # a secret: never in a log line or a traceback
    webhook_routes: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in ``environ`` (default: this process's environment), all checked.

        Raises SettingsError naming the variable: a ``SKYNET_*`` name that is not declared
        (with the nearest declared one), or a value that does not parse or is out of range.
        """
        values = parse_environment(os.environ if environ is None else environ)
        fields = {v.field: values[v.name] for v in VARIABLES if v.field is not None}
        if not fields["group"]:
            fields["group"] = names.default_group(str(fields["env"]), str(fields["layer"]))
        return cls(**fields)  # type: ignore[arg-type]

    def require_instance(self) -> Settings:
        """Return self, or raise if this process has no instance identity (a worker needs one)."""
        if not self.instance_id:
            raise SettingsError("SKYNET_INSTANCE_ID is not set (on EC2 it comes from instance metadata)")
        return self
