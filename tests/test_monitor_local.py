"""``start_local_dashboard``: what ``skynet local up`` starts, as a real ``skynet monitor serve`` process."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request

import pytest

from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.processes import stop_process_group
from skynet_tasks.monitor.local import start_local_dashboard
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(60)


def post(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_local_dashboard_starts_with_a_private_token_and_guards_its_actions(tmp_path):
    moto = MotoServer.start()
    try:
        environment = {**moto.environment(), "SKYNET_ENV": "local"}
        aws = aws_for(environment)
        bootstrap_env(aws, resolve(aws, "local"), ["local-api"])

        dashboard = start_local_dashboard(tmp_path, environment)
        try:
            token_file = tmp_path / "dashboard-token"
            assert dashboard.token_file == str(token_file)
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            token = token_file.read_text().strip()
            assert dashboard.url.startswith("http://127.0.0.1:")
            with urllib.request.urlopen(f"{dashboard.url}/queues", timeout=10) as page:
                assert b"skynet-local-local-api-maint.fifo" in page.read()

            without = post(f"{dashboard.url}/api/rollouts/r-missing/pause", {"X-Skynet-Request": "1"})
            with_token = post(f"{dashboard.url}/api/rollouts/r-missing/pause",
                              {"X-Skynet-Request": "1", "Authorization": f"Bearer {token}"})

            assert without[0] == 401
            assert with_token == (409, {"error": "no rollout r-missing"})
        finally:
            stop_process_group(dashboard.pid, grace=5)
        assert (tmp_path / "logs" / "dashboard.log").exists()
    finally:
        moto.stop()
