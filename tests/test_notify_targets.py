"""The notification targets an operator configures in the layered config (``skynet-notify.json``): what is
accepted, and each rule broken refused with the key named."""

from __future__ import annotations

import json

import pytest

from skynet_tasks.notify.targets import CONFIG_FILE, GITHUB_API, NotifyConfigError, load_config

pytestmark = pytest.mark.timeout(30)


def test_no_file_means_no_targets_and_nothing_is_sent(tmp_path):
    assert load_config(tmp_path).targets == ()


def test_every_target_with_its_defaults(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(json.dumps({
        "sns": True, "webhook": {"url": "https://hooks.example.com/skynet", "ca_bundle": "tls/hooks-ca.crt"},
        "github": {"repo": "acme/shop"}}))

    config = load_config(tmp_path)

    assert config.targets == ("sns", "webhook", "github")
    assert config.sns is not None and config.sns.topic_arn is None  # the stack's topic of the env
    assert config.webhook is not None and config.webhook.secret_file == tmp_path / "secrets" / "notify-webhook"
    assert config.webhook.ca_bundle == tmp_path / "tls" / "hooks-ca.crt"
    assert config.github is not None and config.github.api_url == GITHUB_API
    assert config.github.token_file == tmp_path / "secrets" / "github-token"


def test_a_target_turned_off_is_not_configured(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"sns": False, "webhook": None}))

    assert load_config(tmp_path).targets == ()


@pytest.mark.parametrize(("text", "rule"), [
    ("{not json", "not JSON"),
    (json.dumps(["sns"]), "expected an object"),
    (json.dumps({"slack": {}}), "unknown key"),
    (json.dumps({"sns": {"topic_arn": "skynet-prod-notifications"}}), "sns.topic_arn"),
    (json.dumps({"sns": {"topic": "x"}}), "unknown key"),
    (json.dumps({"webhook": {}}), "missing key"),
    (json.dumps({"webhook": {"url": "http://hooks.example.com/"}}), "plain http"),
    (json.dumps({"webhook": {"url": "ftp://hooks.example.com/"}}), "not an https URL"),
    (json.dumps({"webhook": {"url": "https://hooks.example.com/", "secret": "hunter2"}}), "unknown key"),
    (json.dumps({"webhook": {"url": "https://hooks.example.com/", "secret_file": "/root/secret"}}), "absolute"),
])
def test_a_rule_broken_is_refused_naming_it(tmp_path, text, rule):
    (tmp_path / CONFIG_FILE).write_text(text)

    with pytest.raises(NotifyConfigError, match=rule):
        load_config(tmp_path)
