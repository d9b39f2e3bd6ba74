"""moto's server: the service a request is for, found without listing moto's package at every request.

moto 5.2's server (``DomainDispatcherApplication.get_backend_for_host``) asks whether the request's Host
names one of moto's modules with ``backends.list_of_moto_modules()``, which lists moto's own package
directory and checks each of its entries (about 180) with ``os.path.isdir``: at every request. The
directory does not change while the server runs, so the patch lists it once, when installed. That was a
third of moto's CPU for a DynamoDB ``GetItem`` (2.7 ms, then 1.8 ms), and moto's server used half of the
CPU the test suite's clusters did.
"""

from __future__ import annotations

from contextlib import ExitStack

from skynet_tasks.compat.patching import Patch, replace


def _apply(stack: ExitStack) -> None:
    from moto import backends

    listed = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return listed

    replace(stack, backends, "list_of_moto_modules", list_of_moto_modules)


PATCH = Patch("server_service_lookup", "moto", ">=5.2,<5.3", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
