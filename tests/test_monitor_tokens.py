"""Named dashboard tokens: each action records its token's name; a revoked token is refused at once.

The parsing is tested as data; the dashboard against moto's server with seeded state
(tests/monitorkit.py), its token file managed with ``skynet monitor token``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from monitorkit import GROUP, Seeded, basic, same_origin_headers, seeded_env

from skynet_tasks.cli.monitor import monitor
from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth, AuthConfigError
from skynet_tasks.monitor.tokens import NamedToken, TokenFile, TokenFileError, parse_tokens, write_tokens
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(90)

ALICE, BOB, CAROL = "alice-token-0123456789abcdef", "bob-token-0123456789abcdef", "carol-token-0123456789abcd"


def test_a_lone_token_is_the_token_named_token_as_before():
    assert parse_tokens(f"{ALICE}\n", "f") == (NamedToken("token", ALICE, True),)


def test_named_lines_comments_and_read_only_tokens():
    text = f"# who\nalice {ALICE}\n\n  bob   {BOB}  read\n"
    assert parse_tokens(text, "f") == (NamedToken("alice", ALICE, True), NamedToken("bob", BOB, False))
    assert all(not t.writes for t in parse_tokens(text, "f", read_only=True))


@pytest.mark.parametrize("text, complaint", [
    pytest.param(f"al<ice {ALICE}", "not a token name", id="odd character"),
    pytest.param(f"../etc {ALICE}", "not a token name", id="path"),
    pytest.param(f"-alice {ALICE}", "not a token name", id="leading dash"),
    pytest.param(f"{'a' * 41} {ALICE}", "not a token name", id="too long"),
    pytest.param(f"ålice {ALICE}", "not a token name", id="non-ASCII"),
    pytest.param("alice short", "shorter than 16", id="short token"),
    pytest.param(f"alice {ALICE}\nalice {BOB}", "repeats", id="same name twice"),
    pytest.param(f"alice {ALICE}\nbob {ALICE}", "repeats", id="same token twice"),
    pytest.param(f"alice {ALICE} write", "NAME TOKEN", id="unknown role"),
    pytest.param(f"alice {ALICE} read extra", "NAME TOKEN", id="four fields"),
    pytest.param(f"alice {ALICE}\n{BOB}", "NAME TOKEN", id="a lone token among named ones"),
    pytest.param("# nothing\n", "no token", id="empty"),
])
def test_a_bad_line_is_refused_naming_the_line(text, complaint):
    with pytest.raises(TokenFileError, match=complaint):
        parse_tokens(text, "f")


def test_the_dashboard_refuses_to_start_on_a_bad_or_open_token_file(tmp_path: Path):
    path = tmp_path / "tokens"
    write_tokens(path, (NamedToken("alice", ALICE, True),))
    path.write_text(f"al ice {ALICE}\n")
    with pytest.raises(AuthConfigError, match="line 1"):
        Auth.from_files(path)
    write_tokens(path, (NamedToken("alice", ALICE, True),))
    os.chmod(path, 0o644)
    with pytest.raises(AuthConfigError, match="readable by others"):
        Auth.from_files(path)


def test_a_file_broken_while_serving_refuses_every_token_until_fixed(tmp_path: Path):
    path = tmp_path / "tokens"
    write_tokens(path, (NamedToken("alice", ALICE, True),))
    tokens = TokenFile(path)
    os.chmod(path, 0o644)
    os.utime(path, ns=(1, 1))  # a change the identity check sees even within one clock tick
    assert tokens.tokens() == ()
    os.chmod(path, 0o600)
    os.utime(path, ns=(2, 2))
    assert [t.name for t in tokens.tokens()] == ["alice"]
    path.unlink()
    assert tokens.tokens() == ()


@pytest.fixture(scope="module")
def env() -> Iterator[Seeded]:
    with seeded_env() as seeded:
        yield seeded


@pytest.fixture()
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "dashboard-tokens"
    write_tokens(path, (NamedToken("alice", ALICE, True), NamedToken("bob", BOB, True),
                        NamedToken("viewer", CAROL, False)))
    return path


def dashboard(env: Seeded, token_file: Path) -> Any:
    auth = Auth.from_files(token_file, protect_reads=True)
    return create_app(resolve(env.aws, "local"), env.aws, _celery(env), auth, 60.0).test_client()


def _celery(env: Seeded) -> Any:
    from clusterkit import sender_for

    return sender_for(env.environment).app


def bearer(token: str) -> dict[str, str]:
    return {**same_origin_headers(), "Authorization": f"Bearer {token}"}


def test_an_action_records_the_name_of_its_token_and_a_revoked_token_is_refused_at_once(env, token_file):
    client = dashboard(env, token_file)
    assert client.post("/api/instances/api-1/drain", headers=bearer(ALICE)).status_code == 202
    assert client.post("/api/instances/api-1/undrain", headers=bearer(BOB)).status_code == 202
    newest = env.ledger.actions(GROUP, 2)
    assert [(a["action"], a["actor"]) for a in newest] == [("undrain", "dashboard:bob"), ("drain", "dashboard:alice")]
    # With basic auth too, the token's name is recorded, not the user name typed beside it.
    assert client.post("/api/instances/api-1/drain", headers={**same_origin_headers(),
                       "Authorization": basic("mallory", ALICE)}).status_code == 202
    assert env.ledger.actions(GROUP, 1)[0]["actor"] == "dashboard:alice"

    result = CliRunner().invoke(monitor, ["token", "revoke", "bob", "--token-file", str(token_file)])
    assert result.exit_code == 0, result.output
    before = len(env.ledger.actions(GROUP, 50))
    refused = client.post("/api/instances/api-1/undrain", headers=bearer(BOB))
    assert refused.status_code == 401 and "revoked" in refused.get_json()["error"]
    assert client.get("/api/instances", headers=bearer(BOB)).status_code == 401  # reads too
    assert len(env.ledger.actions(GROUP, 50)) == before
    assert client.post("/api/instances/api-1/undrain", headers=bearer(ALICE)).status_code == 202


def test_unknown_and_read_only_tokens_cannot_act(env, token_file):
    client = dashboard(env, token_file)
    assert client.post("/api/instances/api-1/drain", headers=bearer("unknown-token-0123456789")).status_code == 401
    assert client.get("/api/instances", headers=bearer(CAROL)).status_code == 200
    assert client.post("/api/instances/api-1/drain", headers=bearer(CAROL)).status_code == 403


def test_a_token_added_works_at_once_and_is_printed_once(env, token_file):
    client = dashboard(env, token_file)
    runner = CliRunner()
    added = runner.invoke(monitor, ["token", "add", "dave", "--token-file", str(token_file)])
    assert added.exit_code == 0, added.output
    secret = added.output.strip()
    assert client.post("/api/instances/api-2/undrain", headers=bearer(secret)).status_code == 202
    assert env.ledger.actions(GROUP, 1)[0]["actor"] == "dashboard:dave"
    listed = runner.invoke(monitor, ["token", "list", "--token-file", str(token_file)])
    assert listed.output.split("\n")[:4] == ["alice", "bob", "viewer (read-only)", "dave"]
    assert secret not in listed.output
    assert os.stat(token_file).st_mode & 0o077 == 0


@pytest.mark.parametrize("name", ["al ice", "bob;rm", "<script>", "", "a" * 41, "..", "-x"])
def test_the_cli_refuses_an_odd_token_name(tmp_path, name):
    path = tmp_path / "tokens"
    result = CliRunner().invoke(monitor, ["token", "add", "--token-file", str(path), "--", name])
    assert result.exit_code == 2 and "not a token name" in result.output
    assert not path.exists()


def test_the_cli_refuses_a_name_twice_and_an_unknown_revocation(tmp_path):
    path = tmp_path / "tokens"
    runner = CliRunner()
    assert runner.invoke(monitor, ["token", "add", "alice", "--token-file", str(path)]).exit_code == 0
    again = runner.invoke(monitor, ["token", "add", "alice", "--token-file", str(path)])
    assert again.exit_code == 1 and "exists already" in again.output
    unknown = runner.invoke(monitor, ["token", "revoke", "zed", "--token-file", str(path)])
    assert unknown.exit_code == 1 and "no token named zed" in unknown.output
    assert runner.invoke(monitor, ["token", "revoke", "alice", "--token-file", str(path)]).exit_code == 0
    assert runner.invoke(monitor, ["token", "list", "--token-file", str(path)]).output == ""
