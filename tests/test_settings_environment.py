"""The process's environment outside Skynet's settings: what a child inherits, and what a local cluster exports.

``skynet_tasks.settings`` is the one module that touches the environment; these are its two ways besides
reading the settings, and neither reads a setting.
"""

from __future__ import annotations

import os

import pytest

from skynet_tasks import settings

pytestmark = pytest.mark.timeout(30)


def test_a_child_inherits_this_processs_environment_with_what_is_added(monkeypatch):
    monkeypatch.setenv("SKYNET_TEST_INHERITED", "from the parent")

    env = settings.child_environment(PYTHONPATH="/agent")

    assert env["SKYNET_TEST_INHERITED"] == "from the parent" and env["PYTHONPATH"] == "/agent"
    env["SKYNET_TEST_INHERITED"] = "changed in the copy"
    assert os.environ["SKYNET_TEST_INHERITED"] == "from the parent"  # a copy: the parent's is untouched


def test_a_child_given_only_some_names_gets_only_those_that_are_set(monkeypatch):
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("SKYNET_TEST_SECRET", "not for the child")
    monkeypatch.delenv("TMPDIR", raising=False)

    env = settings.child_environment(keep=("LANG", "TMPDIR"), PATH="/usr/bin")

    assert env == {"LANG": "C.UTF-8", "PATH": "/usr/bin"}


def test_exported_values_are_this_processs_environment_from_then_on(monkeypatch):
    monkeypatch.delenv("SKYNET_TEST_EXPORTED", raising=False)
    settings.export({"SKYNET_TEST_EXPORTED": "http://127.0.0.1:5000"})
    try:
        assert os.environ["SKYNET_TEST_EXPORTED"] == "http://127.0.0.1:5000"
        assert settings.child_environment()["SKYNET_TEST_EXPORTED"] == "http://127.0.0.1:5000"
    finally:
        del os.environ["SKYNET_TEST_EXPORTED"]
