"""Commands that need an optional extra say which one, instead of failing on an import.

An instance installs only the base package; the dashboard, the webhook receiver,
the local cluster and cfn-lint come with extras (pyproject.toml). Each command
that needs one calls ``require_extra`` before importing anything from it.
"""

from __future__ import annotations

from importlib.util import find_spec

import click

# What each extra brings that a command imports (module names, not distribution names).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "webhook": ("gunicorn",),
    "dashboard": ("flask", "prometheus_client", "gunicorn"),
    "stack": ("cfnlint",),
    "local": ("moto", "flask", "prometheus_client", "gunicorn"),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    if extra not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(sorted(EXTRA_MODULES))}")
    return [module for module in EXTRA_MODULES[extra] if find_spec(module) is None]


def require_extra(extra: str, command: str) -> None:
    """Stop ``command`` with a clear message (exit 1, no traceback) when ``extra`` is not installed."""
    missing = missing_modules(extra)
    if missing:
        raise click.ClickException(
            f"{command} needs the {extra} extra: pip install 'skynet[{extra}]' (missing: {', '.join(missing)})")
