"""Release artifacts: deterministic tarballs, their manifest, and safe extraction.

Packing is trusted (it runs on the builder, over the checked-out tree). The
tarball an instance downloads is NOT trusted, and neither is the manifest stored
beside it in the same bucket: whoever can write one can write the other. What is
trusted is the release record the ledger (DynamoDB) holds, written when the
build reported: ``ExpectedRelease``. The manifest must agree with it, and the
tarball must have its sha256 and size, before anything is read; extraction refuses absolute
paths, ``..``, links leaving the release folder, devices and fifos, and archives
that unpack to more bytes or files than allowed. Extraction happens in a
temporary folder renamed into place only when everything succeeded, so a refused
artifact leaves nothing behind.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Protocol

from skynet_tasks import names


class ArtifactError(Exception):
    """An artifact could not be packed, verified or extracted."""


class ChecksumMismatch(ArtifactError):
    """The downloaded artifact is not the one the manifest describes."""


class UnsafeArtifact(ArtifactError):
    """The artifact would write outside its folder, or is too large."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a release tarball: its path in the release, size, sha256 and mode bits."""

    path: str
    size: int
    sha256: str
    mode: int


@dataclass(frozen=True)
class Manifest:
    """What the builder says of a release: its artifact's sha256 and size, its files, who built it.

    Untrusted when read back from the bucket: ``check_manifest`` holds it against the ledger.
    """

    repo: str
    branch: str
    sha: str
    sha256: str
    size: int
    files: list[FileEntry]
    builder: str
    built_at: float
    build_log_key: str
    artifact_key: str

    def to_json(self) -> str:
        """The manifest as indented JSON with sorted keys."""
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse ``text``; ArtifactError unless it is JSON with exactly the manifest's keys and valid file entries."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ArtifactError(f"manifest is not JSON: {error}") from None
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            raise ArtifactError(f"manifest keys must be exactly {sorted(names)}")
        try:
            files = [FileEntry(**entry) for entry in data["files"]]
        except TypeError as error:
            raise ArtifactError(f"manifest file entry is invalid: {error}") from None
        return cls(**{**data, "files": files})


class ReleaseRecord(Protocol):
    """What the ledger records of a built release (``skynet_tasks.ledger.Release`` is one)."""

    @property
    def sha(self) -> str:
        """The release's commit id."""

    @property
    def sha256(self) -> str | None:
        """The sha256 of the release's tarball, or None if the build reported none."""

    @property
    def size(self) -> int | None:
        """The size in bytes of the release's tarball, or None if the build reported none."""


@dataclass(frozen=True)
class ExpectedRelease:
    """The release an install must get, as the ledger recorded it when the build reported (trusted)."""

    sha: str
    sha256: str
    size: int

    @classmethod
    def of(cls, record: ReleaseRecord) -> ExpectedRelease:
        """The expectation a ledger record sets; a record without sha256 or size is refused at install."""
        return cls(sha=record.sha, sha256=record.sha256 or "", size=record.size if record.size is not None else -1)


def check_manifest(manifest: Manifest, expected: ExpectedRelease) -> str:
    """Return the release's sha if ``manifest`` (untrusted) describes exactly ``expected``; else raise ArtifactError.

    Every name is checked before it may become a path, the expectation's as much as the manifest's.
    """
    try:
        sha = names.check_release_sha(expected.sha)
        names.check_sha256(expected.sha256)
        names.check_release_sha(manifest.sha)
    except ValueError as error:
        raise UnsafeArtifact(f"refused: {error}") from None
    if isinstance(expected.size, bool) or not isinstance(expected.size, int) or expected.size < 0:
        raise ArtifactError(f"refused: the ledger records no size for release {sha}")
    if manifest.sha != sha:
        raise ChecksumMismatch(f"refused: the manifest describes release {manifest.sha}, the ledger {sha}")
    if (manifest.sha256, manifest.size) != (expected.sha256, expected.size):
        raise ChecksumMismatch(f"refused: the manifest of {sha} says sha256 {manifest.sha256!s:.64} "
                               f"({manifest.size} bytes), the ledger recorded {expected.sha256} "
                               f"({expected.size} bytes)")
    return sha


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _excluded(relative: str, patterns: tuple[str, ...] | list[str]) -> bool:
    parts = relative.split("/")
    if parts[0] == ".git":
        return True
    return any(fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(parts[0] + "/", pattern)
               for pattern in patterns)


def pack(source_dir: Path, dest: Path, *, exclude: tuple[str, ...] | list[str] = ()) -> list[FileEntry]:
    """Write a byte-for-byte reproducible gzip tarball of ``source_dir``; return its files."""
    source_dir = source_dir.resolve()
    entries: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(source_dir):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(root) / name
            relative = path.relative_to(source_dir).as_posix()
            if _excluded(relative, exclude):
                if name in dirs:
                    dirs.remove(name)
                continue
            entries.append((relative, path))
    entries.sort()
    listing: list[FileEntry] = []
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative, path in entries:
            info = tarfile.TarInfo(relative)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                resolved = (path.parent / target).resolve()
                if os.path.isabs(target) or not resolved.is_relative_to(source_dir):
                    raise ArtifactError(f"{relative}: symlink to {target} leaves the tree")
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                data = path.read_bytes()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                listing.append(FileEntry(relative, len(data), hashlib.sha256(data).hexdigest(), info.mode))
            else:
                raise ArtifactError(f"{relative}: not a regular file, directory or symlink")
    with open(dest, "wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return listing


def verify(path: Path, expected_sha256: str, expected_size: int) -> None:
    """Raise ChecksumMismatch unless the file at ``path`` has exactly this sha256 and size."""
    size = path.stat().st_size
    digest = sha256_file(path)
    if size != expected_size or digest != expected_sha256:
        raise ChecksumMismatch(f"artifact checksum mismatch: expected sha256 {expected_sha256} ({expected_size} bytes),"
                               f" got {digest} ({size} bytes)")


def _check_member(member: tarfile.TarInfo, seen: set[str], links: set[str]) -> None:
    name = member.name
    pure = PurePosixPath(name)
    if not name or "\0" in name or pure.is_absolute() or name.startswith("\\"):
        raise UnsafeArtifact(f"refused {name!r}: absolute or empty path")
    if ".." in pure.parts:
        raise UnsafeArtifact(f"refused {name!r}: path contains '..'")
    if member.isdev() or member.isfifo() or not (member.isfile() or member.isdir() or member.issym()
                                                 or member.islnk()):
        raise UnsafeArtifact(f"refused {name!r}: device, fifo or special file")
    normal = pure.as_posix().rstrip("/")
    if normal in seen:
        raise UnsafeArtifact(f"refused {name!r}: duplicate member")
    seen.add(normal)
    # A member below a symlink would be written wherever that link points: checking each
    # link's own target is not enough once links chain, so no path may pass through one.
    for depth in range(1, len(pure.parts)):
        through = PurePosixPath(*pure.parts[:depth]).as_posix()
        if through in links:
            raise UnsafeArtifact(f"refused {name!r}: path goes through the link {through!r}")
    if member.issym():
        links.add(normal)
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = pure.parent if member.issym() else PurePosixPath(".")
        if target.is_absolute() or ".." in PurePosixPath(os.path.normpath(base / target)).parts:
            raise UnsafeArtifact(f"refused {name!r}: link to {member.linkname!r} leaves the release folder")


def extract_safely(tarball: Path, dest: Path, *, max_bytes: int, max_files: int) -> None:
    """Extract an untrusted tarball into ``dest`` (which must not exist), all or nothing."""
    if dest.exists():
        raise ArtifactError(f"{dest} exists already")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        try:
            with tarfile.open(tarball, mode="r:gz") as tar:
                seen: set[str] = set()
                links: set[str] = set()
                total = 0
                count = 0
                for member in tar:
                    count += 1
                    if count > max_files:
                        raise UnsafeArtifact(f"refused: more than {max_files} entries")
                    _check_member(member, seen, links)
                    if member.isfile():
                        total += member.size
                        if total > max_bytes:
                            raise UnsafeArtifact(f"refused: unpacks to more than {max_bytes} bytes")
                    # The stdlib's data filter is the second line of defence behind the checks above.
                    tar.extract(member, staging, filter="data")
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as error:
            if isinstance(error, tarfile.FilterError):
                raise UnsafeArtifact(f"refused: {error}") from error
            raise ArtifactError(f"artifact is not a readable tar.gz: {error}") from error
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
