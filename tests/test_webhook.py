"""The GitHub webhook receiver over real HTTP, in front of real SQS queues on moto's server.

The receiver runs as ``skynet webhook serve`` in its own process, started the way
``skynet local up`` starts it; each test checks the HTTP answer and what did or did
not reach the group's maintenance queue as a build request. How the server treats its secret file
before it starts is ``test_webhook_secret_file.py``'s.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import BUILD_REQUEST_TASK
from skynet_tasks.resources import resolve
from skynet_tasks.webhook.local import push_payload, send_webhook, start_local_receiver
from skynet_tasks.webhook.signature import sign

pytestmark = pytest.mark.timeout(120)

SHA = "3" * 40
BEFORE = "2" * 40


def celery_task(sqs_body: str) -> str:
    return str(json.loads(base64.b64decode(sqs_body))["headers"]["task"])


def celery_body(sqs_body: str) -> list:
    """[args, kwargs, embed] of a Celery task message as kombu puts it on SQS (base64 JSON envelope)."""
    envelope = json.loads(base64.b64decode(sqs_body))
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return json.loads(body)


class Hook:
    def __init__(self, url: str, secret: bytes, directory: Path, sqs, environment: dict[str, str]) -> None:
        self.url, self.secret, self.directory, self.sqs = url, secret, directory, sqs
        self.environment = environment
        self.queue_url = sqs.get_queue_url(QueueName=names.maintenance_queue("local", "local-api"))["QueueUrl"]

    def builds(self) -> list[dict]:
        """Every build request waiting in the group's maintenance queue (taken off it)."""
        found = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                assert celery_task(message["Body"]) == BUILD_REQUEST_TASK
                found.append(celery_body(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def raw(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        import requests

        response = requests.post(self.url, data=body, headers=headers, timeout=30)
        return response.status_code, response.json()

    def signed_headers(self, body: bytes, event: str = "push", delivery: str = "d-1") -> dict[str, str]:
        return {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign(self.secret, body)}


@pytest.fixture(scope="module")
def hook(tmp_path_factory):
    directory = tmp_path_factory.mktemp("webhook")
    server = MotoServer.start()
    aws = aws_for(server.environment())
    bootstrap_env(aws, resolve(aws, "local"), ["local-api"])
    repo = directory / "repos" / "sample-app.git"
    Ledger(aws.dynamodb, names.state_table("local")).ensure_group("local-api", str(repo), "main")
    receiver = start_local_receiver(directory, server.environment(), repo)
    yield Hook(receiver.url, Path(receiver.secret_file).read_bytes().strip(), directory, aws.sqs,
               server.environment())
    os.killpg(receiver.pid, 15)
    server.stop()


def test_ping_answers_with_the_hook_id_and_starts_nothing(hook):
    status, answer = send_webhook(hook.url, hook.secret, "ping", {"zen": "Keep it logically awesome.", "hook_id": 42})

    assert (status, answer) == (200, {"pong": True, "hook_id": 42})
    assert hook.builds() == []


def test_a_signed_push_to_a_tracked_branch_enqueues_one_build_like_skynet_deploy(hook):
    status, answer = send_webhook(hook.url, hook.secret, "push", push_payload("sample-app", "main", BEFORE, SHA))

    assert status == 202
    assert answer["release"] == SHA and answer["builds"][0]["group"] == "local-api"
    [message] = hook.builds()
    request = message[1]["request"]  # celery's message body: [args, kwargs, embed]
    assert request["sha"] == SHA and request["rollout_id"] == answer["builds"][0]["rollout_id"]
    # The repository URL is the group's own registration, not the payload's clone_url.
    assert request["repo"].endswith("sample-app.git") and "github.com" not in request["repo"]
    assert request["source"] == "webhook"


def test_ten_deliveries_of_the_same_id_start_one_build_even_at_once(hook):
    payload = push_payload("sample-app", "main", BEFORE, "4" * 40)
    answers: list[tuple[int, dict]] = []

    def deliver() -> None:
        answers.append(send_webhook(hook.url, hook.secret, "push", payload, delivery="same-delivery-id"))

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 10 and all(status == 202 for status, _ in answers)
    assert len(hook.builds()) == 1
    rollout_ids = {a["builds"][0]["rollout_id"] for _, a in answers if "builds" in a}
    assert len(rollout_ids) == 1  # every completed answer names the one rollout it started


@pytest.mark.parametrize(("case", "payload", "reason"), [
    ("untracked branch", push_payload("sample-app", "feature/x", BEFORE, SHA), "not tracked"),
    ("untracked repository", push_payload("other-app", "main", BEFORE, SHA), "not tracked"),
    ("tag", {**push_payload("sample-app", "main", BEFORE, SHA), "ref": "refs/tags/v1.0"}, "not a branch push"),
    ("branch deletion", {**push_payload("sample-app", "main", BEFORE, "0" * 40), "deleted": True}, "deleted"),
    ("no commits", {**push_payload("sample-app", "main", BEFORE, SHA), "commits": [], "head_commit": None},
     "without commits"),
])
def test_pushes_that_deploy_nothing_are_accepted_with_a_reason(hook, case, payload, reason):
    status, answer = send_webhook(hook.url, hook.secret, "push", payload)

    assert status == 202 and reason in answer["ignored"], case
    assert hook.builds() == []


def test_unknown_events_are_accepted_and_ignored(hook):
    status, answer = send_webhook(hook.url, hook.secret, "issues", {"action": "opened"})

    assert status == 202 and "issues is not acted on" in answer["ignored"]
    assert hook.builds() == []


def test_refusals_are_clear_json_errors_and_enqueue_nothing(hook):
    body = json.dumps(push_payload("sample-app", "main", BEFORE, SHA)).encode()
    headers = hook.signed_headers(body)
    cases = {
        "unsigned": (401, {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}, body),
        "wrong signature": (401, {**headers, "X-Hub-Signature-256": sign(b"guess", body)}, body),
        "sha1 only": (401, {**{k: v for k, v in headers.items() if k != "X-Hub-Signature-256"},
                            "X-Hub-Signature": "sha1=" + "0" * 40}, body),
        "signature of another body": (401, headers, body + b" "),
        "form encoded": (415, {**headers, "Content-Type": "application/x-www-form-urlencoded"}, body),
        "malformed json": (400, hook.signed_headers(b"{not json"), b"{not json"),
        "missing fields": (400, hook.signed_headers(b'{"ref": "refs/heads/main"}'), b'{"ref": "refs/heads/main"}'),
        "no delivery id": (400, {k: v for k, v in headers.items() if k != "X-GitHub-Delivery"}, body),
    }
    hostile_branch = json.dumps(push_payload("sample-app", "main; rm -rf /", BEFORE, SHA)).encode()
    cases["hostile branch"] = (400, hook.signed_headers(hostile_branch), hostile_branch)
    dotdot = json.dumps(push_payload("sample-app", "../../etc", BEFORE, SHA)).encode()
    cases["dot-dot branch"] = (400, hook.signed_headers(dotdot), dotdot)

    for case, (expected, case_headers, case_body) in cases.items():
        status, answer = hook.raw(case_body, case_headers)
        assert status == expected, (case, answer)
        assert isinstance(answer.get("error"), str) and answer["error"], case

    assert hook.builds() == []


def test_a_body_over_the_limit_is_refused_before_it_is_read(hook):
    # Content-Length announces 100 MB and nothing follows: an answer proves the body was never awaited.
    url = urlparse(hook.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(f"POST {url.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: 100000000\r\nX-GitHub-Event: push\r\n\r\n".encode())
        answer = connection.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413"), answer

    big = b'{"pad": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    status, body = hook.raw(big, hook.signed_headers(big))
    assert status == 413 and "limit" in body["error"]
    assert hook.builds() == []


def test_the_secret_is_never_logged_nor_echoed(hook):
    send_webhook(hook.url, b"wrong secret", "push", push_payload("sample-app", "main", BEFORE, SHA))
    status, answer = hook.raw(b"{}", {"Content-Type": "application/json",
                                      "X-Hub-Signature-256": "sha256=" + hook.secret.decode()})

    assert status == 401 and hook.secret.decode() not in json.dumps(answer)
    log_text = (hook.directory / "logs" / "webhook.log").read_text()
    assert "refused a webhook" in log_text
    assert hook.secret.decode() not in log_text


def test_the_lambda_handler_gives_the_same_answers_behind_api_gateway(hook, monkeypatch):
    import kombu.pools

    from skynet_tasks.webhook import lambda_handler

    for key, value in hook.environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKYNET_WEBHOOK_SECRET", hook.secret.decode())
    monkeypatch.setenv("SKYNET_WEBHOOK_ROUTES", json.dumps(
        {"routes": [{"repo": "sample-app", "branch": "main", "env": "local", "layer": "api"}]}))
    monkeypatch.setattr(lambda_handler, "_receiver", None)
    kombu.pools.reset()
    body = json.dumps(push_payload("sample-app", "main", BEFORE, "5" * 40)).encode()
    event = {"headers": hook.signed_headers(body, delivery="lambda-1"), "isBase64Encoded": True,
             "body": base64.b64encode(body).decode()}

    answer = lambda_handler.handler(event, None)
    forged = lambda_handler.handler({**event, "headers": {**event["headers"], "X-Hub-Signature-256": "sha256=0"}},
                                    None)

    assert answer["statusCode"] == 202 and json.loads(answer["body"])["release"] == "5" * 40
    assert forged["statusCode"] == 401
    assert [m[1]["request"]["sha"] for m in hook.builds()] == ["5" * 40]
    kombu.pools.reset()


def test_a_routes_rollout_policy_is_recorded_on_the_rollout_it_starts(hook, monkeypatch):
    import kombu.pools

    from skynet_tasks.webhook import lambda_handler

    # Given a routing table whose route rolls its group out in halves and reverts on failure
    for key, value in hook.environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKYNET_WEBHOOK_SECRET", hook.secret.decode())
    monkeypatch.setenv("SKYNET_WEBHOOK_ROUTES", json.dumps({"routes": [
        {"repo": "sample-app", "branch": "main", "env": "local", "layer": "api",
         "rollout": {"max_parallel": "50%", "on_failure": "revert"}}]}))
    monkeypatch.setattr(lambda_handler, "_receiver", None)
    kombu.pools.reset()
    body = json.dumps(push_payload("sample-app", "main", BEFORE, "6" * 40)).encode()

    # When a push arrives
    answer = lambda_handler.handler({"headers": hook.signed_headers(body, delivery="routed-1"), "body": body.decode()},
                                    None)

    # Then the rollout it starts carries the route's policy, as `skynet deploy --max-parallel 50%
    # --on-failure revert` would have recorded it
    assert answer["statusCode"] == 202, answer
    rollout_id = json.loads(answer["body"])["builds"][0]["rollout_id"]
    record = Ledger(aws_for(hook.environment).dynamodb, names.state_table("local")).rollout_item(rollout_id) or {}
    assert (record.get("max_parallel"), record.get("on_failure")) == (["50%"], "revert")
    kombu.pools.reset()
