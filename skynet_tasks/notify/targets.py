"""Where a group's rollouts are told: the targets in the instance's layered config, ``skynet-notify.json``.

The file comes from the env's config bucket or table (``skynet config push``), merged Global <
Environment < Layer like any ``*.json`` (key by key), so one file can name the GitHub repository for
every env while each layer adds its own webhook. It is the operator's, as trusted as the config
itself, and still checked strictly: an unknown key or a bad value is refused with its name, and
nothing is sent. Secrets never sit in it: it names files of the config directory that hold them
(``secrets/…``, app-readable and kept out of stored logs like every config secret).

    {"sns": true,
     "webhook": {"url": "https://hooks.example.com/skynet", "secret_file": "secrets/notify-webhook"},
     "github": {"repo": "owner/name", "token_file": "secrets/github-token"}}
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONFIG_FILE = "skynet-notify.json"
TARGETS = ("sns", "webhook", "github")
GITHUB_API = "https://api.github.com"
MAX_SECRET_BYTES = 4096
_REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


class NotifyConfigError(ValueError):
    """A notification config that breaks a rule; the message names the key."""


@dataclass(frozen=True)
class SnsTarget:
    """Publish to the env's topic (the stack's ``skynet-<env>-notifications``), or to ``topic_arn``."""

    topic_arn: str | None = None


@dataclass(frozen=True)
class WebhookTarget:
    """POST each notice as JSON to ``url``, signed with the secret in ``secret_file``."""

    url: str
    secret_file: Path
    ca_bundle: Path | None = None


@dataclass(frozen=True)
class GitHubTarget:
    """A GitHub deployment per code rollout of ``repo``, with its statuses."""

    repo: str
    token_file: Path
    api_url: str = GITHUB_API
    ca_bundle: Path | None = None


@dataclass(frozen=True)
class NotifyConfig:
    """The targets a group's notices go to; none configured means nothing is sent."""

    sns: SnsTarget | None = None
    webhook: WebhookTarget | None = None
    github: GitHubTarget | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        """The names of the configured targets."""
        return tuple(name for name in TARGETS if getattr(self, name) is not None)


def _keys(value: Any, where: str, known: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NotifyConfigError(f"{where}: expected an object with the key(s) {', '.join(known)}")
    unknown = sorted(str(k) for k in set(value) - set(known))
    if unknown:
        raise NotifyConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    missing = [k for k in required if k not in value]
    if missing:
        raise NotifyConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return value


def check_url(url: Any, where: str) -> str:
    """``url`` if it is an https URL (or http to this machine's loopback, for a local receiver)."""
    if not isinstance(url, str) or len(url) > 2000:
        raise NotifyConfigError(f"{where}: expected a URL")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http":
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise NotifyConfigError(f"{where}: {url!r} is plain http: only https, or http to a loopback address")
    elif parts.scheme != "https" or not host:
        raise NotifyConfigError(f"{where}: {url!r} is not an https URL")
    if parts.username or parts.password:
        raise NotifyConfigError(f"{where}: credentials do not belong in a URL (they come from a secret file)")
    return url


def _file(config_dir: Path, value: Any, where: str, may_be_absolute: bool = False) -> Path:
    """A file named relative to the config directory (never out of it), or an absolute path where allowed."""
    if not isinstance(value, str) or not value:
        raise NotifyConfigError(f"{where}: expected a file's path")
    path = Path(value)
    if path.is_absolute():
        if not may_be_absolute:
            raise NotifyConfigError(f"{where}: {value!r} is absolute: secrets are files of the config directory")
        return path
    if ".." in path.parts:
        raise NotifyConfigError(f"{where}: {value!r} leaves the config directory")
    return config_dir / path


def parse_config(value: Any, config_dir: Path, where: str = CONFIG_FILE) -> NotifyConfig:
    """The targets in ``value`` (the file's JSON), files resolved in ``config_dir``; NotifyConfigError if invalid."""
    value = _keys(value, where, TARGETS)
    sns = webhook = github = None
    if value.get("sns") not in (None, False):
        raw = value["sns"]
        if raw is True:
            sns = SnsTarget()
        else:
            arn = _keys(raw, f"{where}: sns", ("topic_arn",), ("topic_arn",))["topic_arn"]
            if not isinstance(arn, str) or not _TOPIC_ARN.match(arn):
                raise NotifyConfigError(f"{where}: sns.topic_arn: {arn!r} is not an SNS topic's ARN")
            sns = SnsTarget(arn)
    if value.get("webhook") is not None:
        raw = _keys(value["webhook"], f"{where}: webhook", ("url", "secret_file", "ca_bundle"), ("url",))
        webhook = WebhookTarget(
            url=check_url(raw["url"], f"{where}: webhook.url"),
            secret_file=_file(config_dir, raw.get("secret_file", "secrets/notify-webhook"),
                              f"{where}: webhook.secret_file"),
            ca_bundle=_file(config_dir, raw["ca_bundle"], f"{where}: webhook.ca_bundle", True)
            if raw.get("ca_bundle") else None)
    if value.get("github") is not None:
        raw = _keys(value["github"], f"{where}: github", ("repo", "token_file", "api_url", "ca_bundle"), ("repo",))
        if not isinstance(raw["repo"], str) or not _REPO.match(raw["repo"]):
            raise NotifyConfigError(f"{where}: github.repo: {raw['repo']!r} is not owner/name")
        github = GitHubTarget(
            repo=raw["repo"],
            token_file=_file(config_dir, raw.get("token_file", "secrets/github-token"), f"{where}: github.token_file"),
            api_url=check_url(raw.get("api_url", GITHUB_API), f"{where}: github.api_url").rstrip("/"),
            ca_bundle=_file(config_dir, raw["ca_bundle"], f"{where}: github.ca_bundle", True)
            if raw.get("ca_bundle") else None)
    return NotifyConfig(sns=sns, webhook=webhook, github=github)


def load_config(config_dir: Path) -> NotifyConfig:
    """The targets configured in ``config_dir`` (none when it holds no ``skynet-notify.json``)."""
    path = config_dir / CONFIG_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return NotifyConfig()
    except OSError as error:
        raise NotifyConfigError(f"{CONFIG_FILE}: cannot be read: {error}") from None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise NotifyConfigError(f"{CONFIG_FILE}: not JSON: {error}") from None
    return parse_config(value, config_dir)


def read_secret(path: Path, what: str) -> bytes:
    """The secret in ``path`` (its whitespace stripped); NotifyConfigError naming ``what`` if missing or empty."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1).strip()
    except OSError as error:
        raise NotifyConfigError(f"{what}: {path} cannot be read ({error.strerror})") from None
    if not data or len(data) > MAX_SECRET_BYTES:
        raise NotifyConfigError(f"{what}: {path} is empty or longer than {MAX_SECRET_BYTES} bytes")
    return data
