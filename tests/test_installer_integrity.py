"""An install trusts the ledger's record of a release, not the bucket that holds its bytes.

The artifact and its manifest live side by side in the repo bucket: whoever can write one can
write the other. So the installer takes the sha256 and size the ledger recorded when the build
reported (``ExpectedRelease``), and every name read from S3 or a message is checked before it
becomes a path. S3 is moto's server, as the instances see it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from storekit import moto_artifact_store

from skynet_tasks import artifacts, commands
from skynet_tasks.artifact_store import ArtifactStore, release_prefix
from skynet_tasks.builder import read_manifest
from skynet_tasks.installer import InstanceLayout, UpdateContext, UpdateFailed, fetch_release, install
from skynet_tasks.services import ProcessServices

pytestmark = pytest.mark.timeout(120)

BUCKET = "skynet-local-repo-000000000000"
REPO, BRANCH = "git@example.invalid:team/app.git", "main"
SHA = "a" * 40


@pytest.fixture(scope="module")
def store():
    with moto_artifact_store(BUCKET) as artifact_store:
        yield artifact_store


def publish(store: ArtifactStore, tmp: Path, sha: str, files: dict[str, str]) -> artifacts.Manifest:
    """Pack ``files`` as the release ``sha`` and upload its artifact and manifest, as a builder does."""
    tree = tmp / f"tree-{len(list(tmp.iterdir()))}"
    tree.mkdir()
    for name, text in {"skynet.yml": "build: []\n", **files}.items():
        (tree / name).write_text(text)
    tarball = tmp / f"{tree.name}.tar.gz"
    listing = artifacts.pack(tree, tarball)
    prefix = release_prefix(REPO, BRANCH, sha)
    manifest = artifacts.Manifest(repo=REPO, branch=BRANCH, sha=sha, sha256=artifacts.sha256_file(tarball),
                                  size=tarball.stat().st_size, files=listing, builder="i-builder", built_at=0.0,
                                  build_log_key="logs/x", artifact_key=f"{prefix}/artifact.tar.gz")
    store.upload_file(tarball, manifest.artifact_key)
    store.put_text(f"{prefix}/manifest.json", manifest.to_json())
    return manifest


def update_context(store: ArtifactStore, root: Path) -> UpdateContext:
    layout = InstanceLayout(root)
    return UpdateContext(layout=layout, store=store, services=ProcessServices(root / "run", root / "logs" / "app.log"),
                         env={}, app_port=1)


def manifest_in_bucket(store: ArtifactStore, sha: str) -> artifacts.Manifest:
    return read_manifest(store, f"{release_prefix(REPO, BRANCH, sha)}/manifest.json")


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_the_release_the_ledger_recorded_installs(store, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    built = publish(store, work, "b" * 40, {"index.php": "genuine"})
    ctx = update_context(store, tmp_path / "instance")

    install(ctx, manifest_in_bucket(store, "b" * 40), artifacts.ExpectedRelease("b" * 40, built.sha256, built.size))

    assert ctx.layout.current_release() == "b" * 40
    assert (ctx.layout.current / "index.php").read_text() == "genuine"


@pytest.mark.parametrize("with_manifest", [True, False], ids=["artifact-and-manifest", "artifact-only"])
def test_an_artifact_replaced_in_the_bucket_is_refused_and_nothing_of_it_is_extracted(store, tmp_path,
                                                                                      with_manifest):
    # Given the release as built and recorded in the ledger,
    work = tmp_path / "work"
    work.mkdir()
    built = publish(store, work, SHA, {"index.php": "genuine"})
    recorded = artifacts.ExpectedRelease(SHA, built.sha256, built.size)
    # when someone with write access to the bucket replaces its bytes (and its manifest, to match),
    forged = publish(store, work, SHA, {"index.php": "<?php system($_GET['c']);", "backdoor.php": "x"})
    if not with_manifest:
        store.put_text(f"{release_prefix(REPO, BRANCH, SHA)}/manifest.json", built.to_json())
    assert forged.sha256 != built.sha256
    ctx = update_context(store, tmp_path / "instance")

    # then the install is refused, and nothing of the forged artifact is on the instance.
    with pytest.raises(UpdateFailed, match="refused") as refused:
        install(ctx, manifest_in_bucket(store, SHA), recorded)

    assert built.sha256 in refused.value.log_text
    assert ctx.layout.current_release() is None
    assert not (ctx.layout.releases / SHA).exists()
    assert not [f for f in files_under(ctx.layout.root) if f.endswith(".php") or "backdoor" in f]


def write_manifest(store: ArtifactStore, key: str, manifest: artifacts.Manifest, sha: str) -> artifacts.Manifest:
    """Store ``manifest`` with its ``sha`` replaced (a hostile manifest); read it back as an instance would."""
    text = manifest.to_json().replace(f'"sha": "{manifest.sha}"', f'"sha": "{sha}"')
    store.put_text(key, text)
    return read_manifest(store, key)


@pytest.mark.parametrize("where", ["manifest", "ledger-and-manifest"])
def test_a_sha_that_leaves_the_releases_folder_is_refused_before_any_file_is_touched(store, tmp_path, where):
    work = tmp_path / "work"
    work.mkdir()
    built = publish(store, work, "c" * 40, {"index.php": "genuine"})
    root = tmp_path / "host" / "instance"
    victim = root / "releases" / ".." / ".." / "x"  # = host/x: outside the releases folder
    victim.mkdir(parents=True)
    (victim / "keep-me").write_text("precious")
    hostile = write_manifest(store, "evil/manifest.json", built, "../../x")
    assert hostile.sha == "../../x"
    expected_sha = "c" * 40 if where == "manifest" else "../../x"
    ctx = update_context(store, root)

    with pytest.raises(artifacts.ArtifactError, match="not a 40 digit lowercase hex commit id"):
        fetch_release(ctx, hostile, artifacts.ExpectedRelease(expected_sha, built.sha256, built.size),
                      commands.CommandLog())
    with pytest.raises(UpdateFailed, match="refused"):
        install(ctx, hostile, artifacts.ExpectedRelease(expected_sha, built.sha256, built.size))

    assert (victim / "keep-me").read_text() == "precious"
    assert not (root / "downloads").exists()
    assert list((root / "releases").iterdir()) == []  # the folder itself is this test's, for the path to exist


def test_a_ledger_record_without_sha256_or_size_installs_nothing(store, tmp_path):
    class Record:
        sha, sha256, size = "d" * 40, None, None

    work = tmp_path / "work"
    work.mkdir()
    publish(store, work, "d" * 40, {"index.php": "genuine"})
    ctx = update_context(store, tmp_path / "instance")

    with pytest.raises(UpdateFailed, match="refused"):
        install(ctx, manifest_in_bucket(store, "d" * 40), artifacts.ExpectedRelease.of(Record()))

    assert not ctx.layout.releases.exists()
