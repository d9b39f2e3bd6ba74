"""The agent wheel that new instances boot: built (or given), hashed, uploaded content-addressed.

Key: ``agent/wheels/<sha256>/<wheel file name>``. A key names one content forever, so the
stack parameters SkynetWheelKey and SkynetWheelSha256 can never disagree with the object, and
a wheel re-built under the same version number gets a key of its own instead of replacing the
bytes an instance is about to verify.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess  # nosec B404 - pip, with a fixed argument list
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skynet_tasks.agent import wheel_version
from skynet_tasks.stacks import StackError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class WheelRef:
    """Where a wheel lives in the repo bucket, and the sha256 an instance checks it against."""

    filename: str
    sha256: str

    @property
    def key(self) -> str:
        """Where the wheel is in the repo bucket."""
        return f"agent/wheels/{self.sha256}/{self.filename}"

    def parameters(self) -> dict[str, str]:
        """The stack parameters that make new instances boot this wheel."""
        return {"SkynetWheelKey": self.key, "SkynetWheelSha256": self.sha256}


def wheel_ref(wheel: Path) -> WheelRef:
    """The content address of ``wheel`` (a skynet-<version>-….whl file); refused if it is not one."""
    wheel_version(wheel.name)  # raises AgentError (a ValueError) for a file that is not a skynet wheel
    with wheel.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return WheelRef(wheel.name, digest)


def upload_wheel(s3: Any, bucket: str, wheel: Path) -> WheelRef:
    """Upload ``wheel`` to its content-addressed key in ``bucket`` (idempotent); return where it is."""
    ref = wheel_ref(wheel)
    s3.upload_file(str(wheel), bucket, ref.key, ExtraArgs={"ContentType": "application/zip"})
    return ref


def build_wheel(out_dir: Path, project: Path = PROJECT_ROOT) -> Path:
    """Build this checkout's wheel into ``out_dir`` with pip; return its path."""
    if not (project / "pyproject.toml").is_file():
        raise StackError(f"no pyproject.toml in {project}: Skynet is not running from a source checkout, "
                         f"pass a wheel with --wheel")
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch, _one_build_at_a_time(project):
        # No build isolation: the build uses the setuptools installed beside Skynet instead of
        # fetching one from an index, so a deploy needs no network but AWS.
        result = subprocess.run(  # noqa: S603 - fixed argument list, no shell  # nosec B603
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "--disable-pip-version-check", "--wheel-dir", scratch, str(project)],
            capture_output=True, text=True, timeout=300, check=False)
        built = sorted(Path(scratch).glob("skynet-*.whl"))
        if result.returncode != 0 or len(built) != 1:
            raise StackError(f"building the agent wheel failed (pip exit {result.returncode}): "
                             f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return built[0].rename(out_dir / built[0].name)


@contextmanager
def _one_build_at_a_time(project: Path) -> Iterator[None]:
    """Hold the checkout's build lock while the block runs.

    pip builds in the checkout itself (its ``build/`` and ``skynet.egg-info``): two builds at once,
    from two local clusters or two test processes, would write over each other's files.
    """
    lock_dir = project / "build"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / "skynet-wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if the build fails
        yield
