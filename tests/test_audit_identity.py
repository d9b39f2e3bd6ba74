"""The audit trail records the CLI caller's AWS identity (STS GetCallerIdentity's ARN) beside the login.

The CLI runs in this process against moto's server with a seeded env (tests/clikit.py); STS
failures come from a stand-in STS endpoint (``AWS_ENDPOINT_URL_STS``), the rest from moto.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from clikit import GOOD_SHA, GROUP, RUNNING, Env, seeded_env
from clusterkit import sender_for

from skynet_tasks.ledger.audit import MAX_FIELD
from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(90)

EXPIRED = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
           b"<Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message>"
           b"</Error><RequestId>1</RequestId></ErrorResponse>")


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with seeded_env() as seeded:
        yield seeded


@pytest.fixture()
def expired_sts() -> Iterator[str]:
    """An STS endpoint that answers every request 403 ExpiredToken, as AWS does for stale credentials."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(403)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(EXPIRED)))
            self.end_headers()
            self.wfile.write(EXPIRED)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def caller(env: Env) -> str:
    return str(env.aws.client("sts").get_caller_identity()["Arn"])


def test_drain_and_undo_record_the_callers_arn(env):
    arn = caller(env)
    assert arn.startswith("arn:aws:")
    drained = env.skynet("drain", "api-3", "--json")
    assert drained.exit_code == 0, drained.output
    assert json.loads(drained.output)["identity"] == arn
    assert env.skynet("drain", "api-3", "--undo").exit_code == 0
    newest = env.ledger.actions(GROUP, 2)
    assert [(a["action"], a["identity"]) for a in newest] == [("undrain", arn), ("drain", arn)]
    assert all(a["actor"].startswith("cli:") for a in newest)


def test_a_rollout_action_and_a_rollback_record_the_callers_arn(env):
    arn = caller(env)
    paused = env.skynet("rollout", "pause", RUNNING, "--json")
    assert paused.exit_code == 0, paused.output
    assert env.ledger.actions(GROUP, 1)[0]["identity"] == arn
    rolled = env.skynet("rollback", "--group", GROUP, "--to", GOOD_SHA[:8])
    assert rolled.exit_code == 0, rolled.output
    newest = env.ledger.actions(GROUP, 1)[0]
    assert (newest["action"], newest["identity"]) == ("rollback", arn)


def test_when_sts_refuses_to_say_who_is_asking_nothing_is_done(env, expired_sts):
    before = env.ledger.actions(GROUP, 50)
    result = env.skynet("drain", "api-2", AWS_ENDPOINT_URL_STS=expired_sts)
    assert result.exit_code == 1
    assert "cannot tell who you are" in result.output and "ExpiredToken" in result.output
    assert env.ledger.actions(GROUP, 50) == before
    assert env.skynet("rollout", "pause", RUNNING, AWS_ENDPOINT_URL_STS=expired_sts).exit_code == 1
    assert env.ledger.actions(GROUP, 50) == before


def test_when_sts_is_out_of_reach_the_command_exits_5_and_nothing_is_done(env):
    before = env.ledger.actions(GROUP, 50)
    result = env.skynet("drain", "api-2", AWS_ENDPOINT_URL_STS="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
    assert result.exit_code == 5 and "AWS unreachable" in result.output
    assert env.ledger.actions(GROUP, 50) == before


def test_long_fields_are_cut_and_the_dashboard_shows_the_identity(env):
    env.ledger.record_action(GROUP, {"group": GROUP, "action": "drain", "actor": "x" * 5000,
                                     "identity": "arn:aws:iam::123456789012:user/<b>eve</b>", "instance": "api-1"})
    newest = env.ledger.actions(GROUP, 1)[0]
    assert len(newest["actor"]) == MAX_FIELD
    dashboard = create_app(resolve(env.aws, "local"), env.aws, sender_for(env.environment).app,
                           Auth("dashboard-token-0123456789"), 60.0)
    page = dashboard.test_client().get("/groups").get_data(as_text=True)
    assert "(arn:aws:iam::123456789012:user/&lt;b&gt;eve&lt;/b&gt;)" in page
