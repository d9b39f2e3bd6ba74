"""The webhook Lambda's code zip, built from the agent's wheel by ``skynet stack deploy``'s own function.

The same wheel gives the same bytes, with no compiled module and none of the runtime's own packages; a
file that is not a wheel is refused before anything is packed. Nothing is deployed here: the function
running from this zip is ``test_webhook_lambda.py``'s.
"""

from __future__ import annotations

import zipfile

import pytest

from skynet_tasks.stacks import StackError
from skynet_tasks.stacks.lambda_zip import build_lambda_zip
from skynet_tasks.stacks.wheels import build_wheel

pytestmark = pytest.mark.timeout(240)


def test_the_code_zip_is_the_same_bytes_from_the_same_wheel_and_carries_no_compiled_module(tmp_path):
    wheel = build_wheel(tmp_path)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first, second = build_lambda_zip(wheel, tmp_path / "one"), build_lambda_zip(wheel, tmp_path / "two")

    assert first.read_bytes() == second.read_bytes()  # one key per content: an unchanged deploy changes nothing
    with zipfile.ZipFile(first) as archive:
        files = archive.namelist()
    assert "skynet_tasks/webhook/lambda_handler.py" in files and "celery/__init__.py" in files
    assert not [f for f in files if f.endswith((".so", ".pyd")) or ".so." in f]
    assert not [f for f in files if f.split("/")[0] in ("boto3", "botocore")]  # the runtime's own


def test_a_wheel_that_is_not_one_is_refused_before_anything_is_packed(tmp_path):
    fake = tmp_path / "skynet-0.1.0-py3-none-any.whl"
    fake.write_bytes(b"not a zip")

    with pytest.raises(StackError, match="not a wheel"):
        build_lambda_zip(fake, tmp_path)
    assert not (tmp_path / "skynet-webhook.zip").exists()
