"""Patches of third-party libraries, each in its own module, version-checked and undoable.

Each module's ``install()`` refuses a library version outside the range its patch was written
for (``UnsupportedVersion``), and does nothing the second time; ``uninstall()`` puts the
library's originals back (for tests). Each patch has a test that shows the upstream bug in the
installed version without it, so an upgrade that fixes the bug fails that test: then delete
the patch. The functions here install a process's set and log, once, which patches are active.
"""

from __future__ import annotations

import logging
import threading

from skynet_tasks.compat import (
    celery_eta_autoscale,
    kombu_ack_wake,
    kombu_curl_timer,
    kombu_shared_loader,
    kombu_sqs_errors,
    moto_cfn,
    moto_dynamodb,
    moto_dynamodb_json,
    moto_iam,
    moto_server_lookup,
    moto_sns,
    moto_sqs,
)
from skynet_tasks.compat.patching import Patch, UnsupportedVersion, installed_version

__all__ = ["CELERY_PATCHES", "KOMBU_PATCHES", "MOTO_PATCHES", "UnsupportedVersion", "install_celery_patches",
           "install_kombu_patches", "install_moto_patches"]

log = logging.getLogger(__name__)

# What a Celery worker on SQS needs: the receive after a task starts at once, and a throttled
# or failing SQS answer restarts the consumer instead of stopping the worker; its boto3 clients share the
# process's model loader (8 to 10 MB and 0.09 s less each).
KOMBU_PATCHES: tuple[Patch, ...] = (kombu_curl_timer.PATCH, kombu_ack_wake.PATCH, kombu_sqs_errors.PATCH,
                                    kombu_shared_loader.PATCH)
# What a Skynet worker's lazy pool needs of Celery: a task held for its countdown starts the child when due.
CELERY_PATCHES: tuple[Patch, ...] = (celery_eta_autoscale.PATCH,)
# What the local AWS (moto's server) needs to behave as AWS does for Skynet.
MOTO_PATCHES: tuple[Patch, ...] = (moto_sqs.PATCH, moto_dynamodb.PATCH, moto_dynamodb_json.PATCH, *moto_iam.PATCHES,
                                   moto_cfn.PATCH, moto_server_lookup.PATCH, moto_sns.PATCH)

_logged: set[str] = set()
_lock = threading.Lock()


def install_set(library: str, patches: tuple[Patch, ...]) -> None:
    """Install ``patches`` of ``library`` (all or none) and log once which are active."""
    for patch in patches:
        patch.check_version()  # refuse before changing anything
    for patch in patches:
        patch.install()
    with _lock:
        if library in _logged:
            return
        _logged.add(library)
    log.info("compat: %s %s: %s active", library, installed_version(library),
             ", ".join(patch.name for patch in patches))


def install_kombu_patches() -> None:
    """Install every kombu patch a Skynet worker runs with."""
    install_set("kombu", KOMBU_PATCHES)


def install_celery_patches() -> None:
    """Install every Celery patch a Skynet worker runs with."""
    install_set("celery", CELERY_PATCHES)


def install_moto_patches() -> None:
    """Install every moto patch the local AWS runs with."""
    install_set("moto", MOTO_PATCHES)
