"""Stack recipes: how an instance serves a release when its ``skynet.yml`` names ``stack:``.

A recipe is a set of Jinja2 templates (shipped in ``templates/<recipe>/``) rendered into the
instance's run folder, the processes to run in the foreground, and a default health check.
``skynet_tasks.stacks.run`` is the app service that renders and runs them; ``buildspec``
fills it in as the release's service when ``skynet.yml`` names a stack, and the installer
starts, restarts and health-checks it like any ``service.command``, so a recipe release
rolls out, halts and rolls back exactly as any other.

Shipped: ``php-nginx`` (Debian's nginx and PHP-FPM), ``static`` (nginx), ``python``
(gunicorn serving a WSGI app).
"""

from __future__ import annotations

from dataclasses import dataclass

HEALTH_PATH = "/.skynet/health"


@dataclass(frozen=True)
class Recipe:
    """A stack recipe: the templates it renders and the path of its health check."""

    name: str
    templates: tuple[str, ...]  # file names under templates/<name>/, rendered without their .j2
    health_path: str


RECIPES = {
    "php-nginx": Recipe("php-nginx", ("nginx.conf.j2", "php-fpm.conf.j2", "health.php.j2"), HEALTH_PATH),
    "static": Recipe("static", ("nginx.conf.j2",), HEALTH_PATH),
    "python": Recipe("python", (), "/"),
}


class UnknownRecipe(LookupError):
    """No stack recipe has that name."""



def recipe(name: str) -> Recipe:
    """The recipe called ``name``; UnknownRecipe if there is none."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownRecipe(f"no stack recipe {name!r} (known: {', '.join(sorted(RECIPES))})") from None
