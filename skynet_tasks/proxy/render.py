"""Rendering the nginx configuration from a checked ProxyView with the templates shipped in the package."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jinja2

from skynet_tasks.proxy.model import ProxyView, ip_literal

TEMPLATES = Path(__file__).parent / "templates"
PLACEHOLDER = "@@config-id@@"


class RenderError(Exception):
    """The template could not be rendered (a bug or a broken custom template)."""


def render(view: ProxyView, env: str, run_dir: Path, listen_port: int, *, listen_address: str,
           template_dir: Path = TEMPLATES) -> str:
    """The nginx configuration serving ``view`` on ``listen_address``:``listen_port``.

    ``listen_address`` is the instance's own address (on EC2 its private one, where the
    load balancer's health check reaches it); RenderError if it is not an IP address.
    """
    try:
        listen = ip_literal(listen_address)
    except ValueError as error:
        raise RenderError(f"listen address: {error}") from None
    # Autoescaping is for HTML; nginx syntax is protected by model.check_server instead,
    # and StrictUndefined turns a missing value into an error rather than an empty directive.
    environment = jinja2.Environment(  # nosec B701 - nginx syntax, not HTML; values are checked
        loader=jinja2.FileSystemLoader(template_dir), undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    try:
        text = environment.get_template("nginx.conf.j2").render(
            upstreams=view.upstreams, webhook=view.webhook, env=env, run_dir=str(run_dir),
            listen_port=int(listen_port), listen_address=listen, config_id=PLACEHOLDER)
    except jinja2.TemplateError as error:
        raise RenderError(f"nginx template: {error}") from error
    # The id is a digest of everything else, so an unchanged registry renders the same text.
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return text.replace(PLACEHOLDER, digest)
