"""moto's server finds the service of a request without listing its own package each time
(``skynet_tasks.compat.moto_server_lookup``): the upstream cost shown in the installed moto, then the fix."""

from __future__ import annotations

import os
from unittest import mock

from moto import backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from skynet_tasks.compat import moto_server_lookup


def directory_listings_of_a_lookup() -> int:
    """How many times finding the service of one request (Host ``dynamodb``) lists a directory."""
    dispatcher = DomainDispatcherApplication(create_backend_app)
    with mock.patch.object(os, "listdir", wraps=os.listdir) as listdir:
        assert dispatcher.get_backend_for_host("dynamodb") == "dynamodb"
    return listdir.call_count


def test_still_needed_moto_lists_its_package_at_every_request():
    assert not moto_server_lookup.PATCH.installed
    assert directory_listings_of_a_lookup() == 1
    assert directory_listings_of_a_lookup() == 1  # again, for the next request


def test_a_request_finds_its_service_without_listing_a_directory():
    modules = tuple(backends.list_of_moto_modules())

    with moto_server_lookup.PATCH.applied():
        assert directory_listings_of_a_lookup() == 0
        assert tuple(backends.list_of_moto_modules()) == modules  # the same modules, listed once
    assert directory_listings_of_a_lookup() == 1  # moto's own, once uninstalled
