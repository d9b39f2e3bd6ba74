"""The S3 repo bucket: artifacts, manifests and logs of releases.

Layout: ``<repo>/<branch>/<sha>/artifact.tar.gz`` and ``manifest.json``, as the
design fixes it; logs under ``logs/``. ``<repo>`` is the repository's name,
made safe for a key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def repo_key_name(repo_url: str) -> str:
    """A key-safe name for a repository URL: its last path part without ``.git``."""
    name = repo_url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name[:-4] if name.endswith(".git") else name
    return _UNSAFE.sub("-", name).strip("-.") or "repo"


def release_prefix(repo_url: str, branch: str, sha: str) -> str:
    """The key prefix of one release: ``<repo>/<branch>/<sha>``, the repo and branch made key-safe."""
    return f"{repo_key_name(repo_url)}/{_UNSAFE.sub('-', branch)}/{sha}"


class ArtifactStore:
    """The repo bucket, read and written through the S3 client passed in."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def upload_file(self, path: Path, key: str, content_type: str = "application/octet-stream") -> None:
        """Upload the local file ``path`` as ``key``, with ``content_type``."""
        self.s3.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})

    def put_text(self, key: str, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        """Store ``text`` (UTF-8) as ``key``."""
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode(), ContentType=content_type)

    def get_text(self, key: str) -> str:
        """The object ``key`` as text, undecodable bytes replaced; the client's error if it is missing."""
        return str(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8", "replace"))

    def download(self, key: str, dest: Path) -> int:
        """Download ``key`` to ``dest``; return the number of bytes written."""
        self.s3.download_file(self.bucket, key, str(dest))
        return dest.stat().st_size

    def exists(self, key: str) -> bool:
        """Whether ``key`` is in the bucket (any client error, a denial included, reads as no)."""
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError:
            return False
        return True
