"""Release artifacts: reproducible packing, checksum verification, and extraction of untrusted tarballs.

Every hostile tarball here is refused with an UnsafeArtifact that names the member,
and leaves nothing behind: not the release folder, not a staging folder, not a file
outside it.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from skynet_tasks.artifacts import (
    ArtifactError,
    ChecksumMismatch,
    UnsafeArtifact,
    extract_safely,
    pack,
    sha256_file,
    verify,
)

pytestmark = pytest.mark.timeout(30)


def make_tree(root: Path) -> Path:
    (root / "app" / "static").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print('hello')\n")
    (root / "app" / "static" / "style.css").write_text("body {}\n")
    run = root / "run.sh"
    run.write_text("#!/bin/sh\nexec python3 app/main.py\n")
    run.chmod(0o755)
    (root / "app" / "current.css").symlink_to("static/style.css")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


def test_packing_the_same_tree_twice_gives_the_same_bytes_whatever_the_timestamps(tmp_path):
    tree = make_tree(tmp_path / "tree")
    first = tmp_path / "first.tar.gz"
    pack(tree, first)
    later = time.time() + 3600
    for path in tree.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (later, later))
    second = tmp_path / "second.tar.gz"
    files = pack(tree, second)

    assert first.read_bytes() == second.read_bytes()
    assert [f.path for f in files] == ["app/main.py", "app/static/style.css", "run.sh"]
    assert next(f for f in files if f.path == "run.sh").mode == 0o755
    with tarfile.open(second) as tar:
        assert ".git/HEAD" not in tar.getnames()  # the checkout's git folder is never shipped


def test_a_packed_tree_round_trips_through_safe_extraction(tmp_path):
    tree = make_tree(tmp_path / "tree")
    tarball = tmp_path / "release.tar.gz"
    pack(tree, tarball)

    extract_safely(tarball, tmp_path / "out", max_bytes=10_000, max_files=100)

    assert (tmp_path / "out" / "app" / "main.py").read_text() == "print('hello')\n"
    assert os.readlink(tmp_path / "out" / "app" / "current.css") == "static/style.css"
    assert os.access(tmp_path / "out" / "run.sh", os.X_OK)


def test_packing_refuses_a_symlink_that_leaves_the_tree(tmp_path):
    tree = make_tree(tmp_path / "tree")
    (tree / "secrets").symlink_to("/etc/shadow")

    with pytest.raises(ArtifactError, match="leaves the tree"):
        pack(tree, tmp_path / "release.tar.gz")


def test_verify_refuses_an_artifact_that_is_not_the_one_the_manifest_names(tmp_path):
    tarball = tmp_path / "release.tar.gz"
    pack(make_tree(tmp_path / "tree"), tarball)
    good = sha256_file(tarball)
    verify(tarball, good, tarball.stat().st_size)

    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    tarball.write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatch, match="checksum mismatch"):
        verify(tarball, good, tarball.stat().st_size)


# ---- hostile tarballs --------------------------------------------------------------------------------------

def hostile(path: Path, *members: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for add in members:
            add(tar)
    return path


def file_member(name: str, data: bytes = b"pwned\n") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return add


def link_member(name: str, target: str, kind: bytes) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        tar.addfile(info)
    return add


def special_member(name: str, kind: bytes) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.devmajor, info.devminor = kind, 1, 3
        tar.addfile(info)
    return add


HOSTILE = {
    "dot-dot": ([file_member("../escaped.txt")], "'..'"),
    "nested dot-dot": ([file_member("app/../../escaped.txt")], "'..'"),
    "absolute": ([file_member("/tmp/skynet-escaped.txt")], "absolute"),
    "symlink out": ([link_member("app/link", "../../outside", tarfile.SYMTYPE)], "leaves the release folder"),
    "absolute symlink": ([link_member("etc", "/etc", tarfile.SYMTYPE)], "leaves the release folder"),
    "write through a symlink": ([link_member("app", ".", tarfile.SYMTYPE),
                                 link_member("app/up", "..", tarfile.SYMTYPE),
                                 file_member("app/up/escaped.txt")], "through the link 'app'"),
    "hardlink out": ([link_member("passwd", "../../../etc/passwd", tarfile.LNKTYPE)], "leaves the release folder"),
    "absolute hardlink": ([link_member("passwd", "/etc/passwd", tarfile.LNKTYPE)], "leaves the release folder"),
    "character device": ([special_member("dev/null", tarfile.CHRTYPE)], "device"),
    "block device": ([special_member("dev/sda", tarfile.BLKTYPE)], "device"),
    "fifo": ([special_member("pipe", tarfile.FIFOTYPE)], "fifo"),
    "duplicate member": ([file_member("app.py", b"good\n"), file_member("app.py", b"evil\n")], "duplicate"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_tarball_is_refused_and_leaves_nothing_behind(tmp_path, case):
    members, reason = HOSTILE[case]
    root = tmp_path / "root"
    releases = root / "releases"
    releases.mkdir(parents=True)
    tarball = hostile(tmp_path / "evil.tar.gz", *members)

    with pytest.raises(UnsafeArtifact, match=reason):
        extract_safely(tarball, releases / "abc", max_bytes=10_000, max_files=100)

    assert list(releases.iterdir()) == []  # neither the release nor its staging folder
    assert sorted(p.name for p in root.iterdir()) == ["releases"]
    assert not Path("/tmp/skynet-escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_an_archive_that_unpacks_past_the_size_limit_is_refused(tmp_path):
    # 64 MiB of zeros compress to about 64 KiB: the limit counts what it unpacks to, not its download size.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(gzip.compress(raw.getvalue()))
    assert bomb.stat().st_size < 1 << 20

    with pytest.raises(UnsafeArtifact, match="more than"):
        extract_safely(bomb, tmp_path / "out", max_bytes=16 << 20, max_files=100)
    assert not (tmp_path / "out").exists()


def test_an_archive_with_too_many_files_is_refused(tmp_path):
    tarball = hostile(tmp_path / "many.tar.gz", *[file_member(f"f{n}", b"") for n in range(50)])

    with pytest.raises(UnsafeArtifact, match="more than 20 entries"):
        extract_safely(tarball, tmp_path / "out", max_bytes=10_000, max_files=20)
    assert not (tmp_path / "out").exists()


def test_a_truncated_or_non_tar_download_is_a_clear_error(tmp_path):
    good = tmp_path / "good.tar.gz"
    pack(make_tree(tmp_path / "tree"), good)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    html = tmp_path / "error-page.tar.gz"
    html.write_bytes(b"<html>503 Service Unavailable</html>")

    for broken in (truncated, html):
        with pytest.raises(ArtifactError, match="not a readable tar.gz"):
            extract_safely(broken, tmp_path / "out", max_bytes=10_000, max_files=100)
        assert not (tmp_path / "out").exists()
