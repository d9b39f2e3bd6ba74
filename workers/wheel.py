"""First boot: download the agent wheel the stack pins and verify its sha256 before anything installs it.

Runs before Skynet is installed, so this file needs only the standard library and boto3, and
user-data can run it without the package: ``python3 - < wheel.py`` works as well as
``python3 -m workers.wheel``. Arguments default to what the launch template exports:

    SKYNET_REPO_BUCKET, SKYNET_WHEEL_KEY, SKYNET_WHEEL_SHA256

On success it prints the verified wheel's path (and nothing else on stdout) and exits 0. A wheel
whose sha256 differs is deleted, and it exits 1 with the reason on stderr; so does a download that
fails, leaving no partial file. Bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

SHA256 = re.compile(r"[0-9a-f]{64}")
# A wheel file name pip accepts, and nothing a path or a shell could misread.
WHEEL_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*\.whl")


class WheelRefused(Exception):
    """The wheel could not be fetched, or is not the one the stack pins."""


def fetch_verified(s3: Any, bucket: str, key: str, sha256: str, dest_dir: Path) -> Path:
    """Download ``key`` from ``bucket`` into ``dest_dir`` and return its path, only if its sha256 is ``sha256``.

    The file appears under its final name only once verified; on any failure nothing is left.
    """
    name = key.rsplit("/", 1)[-1]
    if WHEEL_FILE.fullmatch(name) is None:
        raise ValueError(f"{key!r} does not end in a wheel file name")
    if SHA256.fullmatch(sha256) is None:
        raise ValueError(f"{sha256!r} is not a sha256 (64 lowercase hex digits)")
    try:
        fd, partial_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=dest_dir)
    except OSError as error:
        raise WheelRefused(f"cannot write to {dest_dir}: {error}") from None
    os.close(fd)
    partial = Path(partial_name)
    try:
        try:
            s3.download_file(bucket, key, str(partial))
        except Exception as error:  # noqa: BLE001 - any failure to fetch refuses the boot with its reason
            raise WheelRefused(f"cannot download s3://{bucket}/{key}: {error}") from None
        with partial.open("rb") as stream:  # read in blocks: constant memory whatever the wheel's size
            actual = hashlib.file_digest(stream, "sha256").hexdigest()
        if not hmac.compare_digest(actual, sha256):
            raise WheelRefused(f"s3://{bucket}/{key} has sha256 {actual}, but the stack pins {sha256} "
                               f"(SKYNET_WHEEL_SHA256): not installed")
        final = dest_dir / name
        partial.replace(final)
        return final
    finally:
        partial.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: verify the pinned wheel, print its path; exit 1 if refused."""
    parser = argparse.ArgumentParser(prog="workers.wheel", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", default=os.environ.get("SKYNET_REPO_BUCKET"))
    parser.add_argument("--key", default=os.environ.get("SKYNET_WHEEL_KEY"))
    parser.add_argument("--sha256", default=os.environ.get("SKYNET_WHEEL_SHA256"))
    parser.add_argument("--dest", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    for option in ("bucket", "key", "sha256"):
        if not getattr(args, option):
            parser.error(f"--{option} is required (or its SKYNET_ variable)")
    import boto3  # only here: --help and argument errors work without it

    try:
        path = fetch_verified(boto3.client("s3"), args.bucket, args.key, args.sha256, args.dest)
    except ValueError as error:
        parser.error(str(error))
    except WheelRefused as error:
        print(f"skynet: refusing the agent wheel: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
