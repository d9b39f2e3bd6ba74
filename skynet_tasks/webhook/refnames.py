"""Names from a webhook payload, checked before they go near git, a queue or a log line.

Untrusted input: everything here comes from the request body. The rules are git's
``check-ref-format`` rules for branch names and GitHub's rules for repository names.
"""

from __future__ import annotations

import re

from skynet_tasks import names

_FORBIDDEN_IN_REF = set(" ~^:?*[\\\x7f")
_REPO_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
ZERO_SHA = "0" * 40


class BadName(ValueError):
    """A name from the payload is not a valid git or GitHub name."""


def check_branch(name: str) -> str:
    """Return ``name`` if it is a valid branch name (the part after ``refs/heads/``), else raise."""
    if not isinstance(name, str) or not name or len(name) > 255:
        raise BadName("branch name is empty or longer than 255 characters")
    if any(ord(c) < 0x20 or c in _FORBIDDEN_IN_REF for c in name):
        raise BadName("branch name contains a control character, a space or one of ~^:?*[\\")
    if name.startswith("/") or name.endswith("/") or "//" in name or name.endswith(".") or ".." in name \
            or "@{" in name or name == "@":
        raise BadName("branch name breaks git's ref-name rules (/, //, .., @{, trailing .)")
    for part in name.split("/"):
        if part.startswith(".") or part.endswith(".lock") or part.startswith("-"):
            raise BadName("a branch name component starts with '.' or '-', or ends with '.lock'")
    return name


def check_repository(full_name: str) -> tuple[str, str]:
    """Split and check ``owner/name``."""
    if not isinstance(full_name, str) or full_name.count("/") != 1:
        raise BadName("repository full_name must be owner/name")
    owner, name = full_name.split("/")
    if not _OWNER.match(owner) or not _REPO_NAME.match(name) or name in (".", ".."):
        raise BadName("repository owner or name has characters GitHub does not allow")
    return owner, name


def check_sha(value: str) -> str:
    """``value`` if it is a full commit id (40 lowercase hex digits); BadName otherwise."""
    if not isinstance(value, str) or not names.SHA.match(value):
        raise BadName("commit id must be 40 lowercase hexadecimal characters")
    return value
