"""The config directory on an overlay root, as in a container or an instance of the stack-built cluster.

rename(2) of a directory that lives in an overlay's lower layer fails with EXDEV; a config
directory made by hand before Skynet (baked into the image) is such a directory. Needs root
(an overlay mount): CI runs as root.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from skynet_tasks.config.merge import MergedConfig, MergedFile
from skynet_tasks.config.sync import ConfigDir

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def overlay_etc(tmp_path: Path) -> Iterator[Path]:
    """An /etc whose image (lower layer) already has a hand-made config directory."""
    lower, upper, work, etc = (tmp_path / name for name in ("lower", "upper", "work", "etc"))
    for folder in (lower / "config", upper, work, etc):
        folder.mkdir(parents=True)
    (lower / "config" / "hand-made.conf").write_text("from the image\n")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}",
                    str(etc)], check=True, timeout=10)
    try:
        yield etc
    finally:
        subprocess.run(["umount", str(etc)], check=True, timeout=10)


def test_a_hand_made_config_directory_in_the_image_is_kept_and_replaced_by_the_synced_config(overlay_etc):
    config = ConfigDir(overlay_etc / "config")
    merged = MergedConfig({"app.json": MergedFile("app.json", b'{"greeting": "hello"}\n', "Layers/api")})

    version = config.write(merged)
    config.activate(version)

    assert config.path.is_symlink() and config.current_version() == version
    assert (config.path / "app.json").read_text() == '{"greeting": "hello"}\n'
    [kept] = config.generations.glob("preexisting-*")
    assert (kept / "hand-made.conf").read_text() == "from the image\n"
    assert not list(config.generations.glob(".tmp-*"))
