"""The compat wing: a patch installs once, only on the library versions it was written for, and comes off.

Each patch's "still needed" test sits beside the behaviour it fixes (test_curl_timer, test_ack_wake,
test_compat_moto); here is what every patch shares, shown on real ones.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import uuid

import pytest
from kombu.asynchronous.http.curl import CurlClient
from kombu.transport.SQS import Channel
from packaging.version import Version

from skynet_tasks import compat
from skynet_tasks.compat import kombu_ack_wake, kombu_curl_timer, moto_iam, patching
from skynet_tasks.compat.patching import UnsupportedVersion

pytestmark = pytest.mark.timeout(30)

ALL_PATCHES = compat.KOMBU_PATCHES + compat.CELERY_PATCHES + compat.MOTO_PATCHES


@pytest.fixture(autouse=True)
def nothing_left_installed():
    yield
    for patch in ALL_PATCHES:
        patch.uninstall()
    compat._logged.clear()


@pytest.fixture
def installed_version_is(monkeypatch):
    def fake(text: str) -> None:
        monkeypatch.setattr(patching, "installed_version", lambda library: Version(text))

    return fake


def test_install_refuses_a_version_outside_the_patch_range_and_changes_nothing(installed_version_is):
    original = CurlClient._set_timeout
    installed_version_is("5.8.0")

    with pytest.raises(UnsupportedVersion) as refused:
        kombu_curl_timer.install()

    message = str(refused.value)
    assert "kombu 5.8.0" in message and ">=5.7,<5.8" in message and "curl_timer" in message
    assert CurlClient._set_timeout is original and not kombu_curl_timer.PATCH.installed


def test_a_set_is_refused_whole_when_one_of_its_libraries_versions_is_outside(installed_version_is):
    installed_version_is("5.3.1")
    with pytest.raises(UnsupportedVersion, match="moto 5.3.1"):
        compat.install_moto_patches()
    assert not any(patch.installed for patch in compat.MOTO_PATCHES)


def test_installing_twice_patches_once_and_uninstall_restores_the_originals():
    original_ack, original_timer = Channel.basic_ack, CurlClient._set_timeout

    kombu_ack_wake.install()
    kombu_ack_wake.install()
    kombu_curl_timer.install()
    assert Channel.basic_ack.__wrapped__ is original_ack  # wrapped once, not twice
    assert CurlClient._set_timeout is kombu_curl_timer.set_timeout

    kombu_ack_wake.uninstall()
    kombu_curl_timer.uninstall()
    kombu_curl_timer.uninstall()  # a second uninstall is harmless
    assert Channel.basic_ack is original_ack and CurlClient._set_timeout is original_timer
    assert "basic_ack" not in vars(Channel) or vars(Channel)["basic_ack"] is original_ack


def test_a_patch_that_adds_an_attribute_removes_it_when_uninstalled():
    from moto.ssm.responses import SimpleSystemManagerResponse

    with moto_iam.SSM_RESOURCES.applied():
        assert hasattr(SimpleSystemManagerResponse, "_determine_resource")
    assert not hasattr(SimpleSystemManagerResponse, "_determine_resource")


def test_the_registry_installs_a_set_and_says_once_which_patches_are_active(caplog):
    caplog.set_level(logging.INFO, logger="skynet_tasks.compat")

    compat.install_kombu_patches()
    compat.install_kombu_patches()

    assert all(patch.installed for patch in compat.KOMBU_PATCHES)
    lines = [record.getMessage() for record in caplog.records if record.name == "skynet_tasks.compat"]
    active = "curl_timer, ack_wake, sqs_throttled_receive, sqs_shared_loader"
    assert lines == [f"compat: kombu {patching.installed_version('kombu')}: {active} active"]


# ---- a patch that waits for its module (``Patch.on_import``) ------------------------------------------------
def module_patch(name: str) -> patching.Patch:
    """A patch of the module ``name`` (``VALUE = "original"``), applied when it is imported."""

    def apply(stack) -> None:
        patching.replace(stack, importlib.import_module(name), "VALUE", "patched")

    return patching.Patch("value", "kombu", ">=0", apply, on_import=name)


@pytest.fixture
def unimported_module(tmp_path, monkeypatch):
    name = f"not_yet_imported_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text('VALUE = "original"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_patch_waiting_for_its_module_imports_nothing_and_applies_as_the_module_is_imported(unimported_module):
    patch = module_patch(unimported_module)

    patch.install()
    assert unimported_module not in sys.modules and patch.armed and not patch.installed
    module = importlib.import_module(unimported_module)

    assert module.VALUE == "patched" and patch.installed
    patch.uninstall()
    assert module.VALUE == "original" and not patch.armed


def test_a_waiting_patch_uninstalled_before_its_module_is_imported_never_applies(unimported_module):
    patch = module_patch(unimported_module)
    patch.install()
    patch.uninstall()

    assert importlib.import_module(unimported_module).VALUE == "original" and not patch.installed


def test_a_patch_whose_module_is_imported_already_applies_at_once(unimported_module):
    module = importlib.import_module(unimported_module)

    with module_patch(unimported_module).applied():
        assert module.VALUE == "patched"
    assert module.VALUE == "original"


def test_the_local_aws_patches_leave_ssm_and_cloudformation_unimported_until_moto_needs_them():
    # In a process of its own, as moto's server is: this one has imported moto's services for other tests.
    code = ("import sys\nfrom skynet_tasks.compat import install_moto_patches\ninstall_moto_patches()\n"
            "print(sorted(m for m in ('moto.ssm.responses', 'moto.cloudformation.parsing', 'moto.ec2')"
            " if m in sys.modules))\n"
            "from moto.ssm.responses import SimpleSystemManagerResponse\n"
            "print(hasattr(SimpleSystemManagerResponse, '_determine_resource'))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["[]", "True"]  # none imported; SSM's patch applied once SSM's code is
