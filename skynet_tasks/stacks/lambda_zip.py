"""The webhook receiver's Lambda code: the agent wheel and its dependencies in one zip, uploaded content-addressed.

The handler imports Celery to enqueue a build exactly as ``skynet deploy`` does, so the zip carries
the agent and every distribution it requires, except those the Lambda Python runtime provides
(boto3, botocore, s3transfer, jmespath). They are copied from the environment Skynet runs in, as
installed, so a deploy needs no package index. Compiled extension modules are left out: each one
the handler reaches has a pure-Python path (PyYAML and MarkupSafe fall back to Python code; kombu
imports pycurl only to consume SQS asynchronously, and the handler only sends), so the zip runs on
any architecture and on the runtime the template names.

The zip is deterministic (sorted entries, fixed timestamps): the same agent and dependencies give
the same bytes, hence the same key ``agent/lambda/<sha256>/skynet-webhook.zip``, and CloudFormation
updates the function only when its code changed.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from skynet_tasks.stacks import StackError

RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
ZIP_NAME = "skynet-webhook.zip"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: no build time in the bytes
_COMPILED = (".so", ".pyd", ".dylib")


@dataclass(frozen=True)
class LambdaZipRef:
    """Where the receiver's code lives in the repo bucket."""

    sha256: str

    @property
    def key(self) -> str:
        """Where the zip is in the repo bucket."""
        return f"agent/lambda/{self.sha256}/{ZIP_NAME}"


def _wheel_requirements(wheel: Path) -> list[Requirement]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
            if name is None:
                raise StackError(f"{wheel} has no METADATA: not a wheel")
            headers = HeaderParser().parsestr(archive.read(name).decode())
    except zipfile.BadZipFile:
        raise StackError(f"{wheel} is not a zip file: not a wheel") from None
    return [Requirement(text) for text in headers.get_all("Requires-Dist") or []]


def required_distributions(wheel: Path) -> list[metadata.Distribution]:
    """The installed distributions the wheel's base install needs, transitively, minus the runtime's own."""
    found: dict[str, metadata.Distribution] = {}
    pending = [(r, "") for r in _wheel_requirements(wheel)]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if name in RUNTIME_PROVIDED:
            continue
        if name not in found:
            try:
                found[name] = metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError:
                raise StackError(f"{requirement.name} is not installed here: install Skynet's dependencies "
                                 f"to build the webhook's code") from None
            pending += [(Requirement(text), "") for text in found[name].requires or []]
        for wanted in requirement.extras:  # kombu[sqs]: the extra's own requirements
            pending += [(Requirement(text), wanted) for text in found[name].requires or []
                        if Requirement(text).marker is not None]
    return [found[name] for name in sorted(found)]


def _distribution_files(distribution: metadata.Distribution) -> Iterator[tuple[str, Path]]:
    for file in distribution.files or []:
        path = PurePosixPath(str(file))
        if ".." in path.parts or "__pycache__" in path.parts or path.suffix in _COMPILED or ".so." in path.name:
            continue  # scripts outside site-packages, bytecode, compiled modules and their libraries
        yield str(path), Path(str(distribution.locate_file(file)))


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def build_lambda_zip(wheel: Path, out_dir: Path) -> Path:
    """Pack ``wheel`` and its dependencies into ``out_dir``/skynet-webhook.zip; return its path."""
    distributions = required_distributions(wheel)  # first: refuses a file that is not a wheel
    contents: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.endswith("/"):
                contents[name] = archive.read(name)
    for distribution in distributions:
        for name, source in _distribution_files(distribution):
            if source.is_file():
                contents.setdefault(name, source.read_bytes())
    target = out_dir / ZIP_NAME
    with zipfile.ZipFile(target, "w") as out:
        for name in sorted(contents):
            out.writestr(_entry(name), contents[name])
    return target


def lambda_zip_ref(path: Path) -> LambdaZipRef:
    """The content address of a built zip."""
    with path.open("rb") as stream:
        return LambdaZipRef(hashlib.file_digest(stream, "sha256").hexdigest())


def upload_lambda_zip(s3: Any, bucket: str, path: Path) -> LambdaZipRef:
    """Upload the zip to its content-addressed key in ``bucket`` (idempotent); return where it is."""
    ref = lambda_zip_ref(path)
    s3.upload_file(str(path), bucket, ref.key, ExtraArgs={"ContentType": "application/zip"})
    return ref
