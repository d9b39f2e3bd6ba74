"""The local AWS's fault modes: each happens, with the error codes a client sees on AWS.

Clients here retry nothing (``total_max_attempts=1``), so every fault the server serves is seen.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from skynet_tasks.dynamo import condition_failed, lost_to_another_write, transaction_conflict
from skynet_tasks.local.faults import Faults, FaultSpecError, parse_faults, take_faults_argument
from skynet_tasks.local.motoserver import MotoServer

pytestmark = pytest.mark.timeout(90)

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def client_of(server: MotoServer, service: str):
    return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1", config=NO_RETRIES,
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106 - moto's dummy


def code_of(call) -> tuple[str, int]:
    """The error code and HTTP status a call ends with ('ok', 200 if it succeeds)."""
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]
    return "ok", 200


def make_state_table(db) -> None:
    db.create_table(TableName="state", BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                          {"AttributeName": "sk", "AttributeType": "S"}])


def put(pk: str, value: str = "1") -> dict:
    return {"Put": {"TableName": "state", "Item": {"pk": {"S": pk}, "sk": {"S": "x"}, "v": {"N": value}}}}


# ---- the spec -------------------------------------------------------------------

def test_a_spec_names_the_modes_and_their_parameters():
    assert parse_faults("") == Faults() and not Faults().active
    assert parse_faults("conflicts,throttle") == Faults(conflict_hold=0.05, throttle_rate=0.1)
    assert parse_faults("conflicts=200, throttle=0.25") == Faults(conflict_hold=0.2, throttle_rate=0.25)
    assert parse_faults(parse_faults("conflicts=200,throttle=0.25").spec()) == Faults(0.2, 0.25)
    only = parse_faults("throttle=0.5:s3+dynamodb")
    assert only == Faults(throttle_rate=0.5, throttled=("s3", "dynamodb")) and parse_faults(only.spec()) == only


@pytest.mark.parametrize("spec", ["latency", "throttle=2", "throttle=0", "throttle=x", "conflicts=-1",
                                  "throttle=0.1:ec2", "throttle=0.1:"])
def test_a_bad_spec_is_refused_with_what_is_wrong(spec):
    with pytest.raises(FaultSpecError):
        parse_faults(spec)


def test_the_faults_argument_is_taken_out_of_moto_s_command_line():
    faults, rest = take_faults_argument(["-H", "127.0.0.1", "--faults", "conflicts", "-p", "5000", "--faults=throttle"])
    assert rest == ["-H", "127.0.0.1", "-p", "5000"]
    assert faults == Faults(conflict_hold=0.05, throttle_rate=0.1)


def test_the_server_refuses_an_unknown_mode_at_start():
    done = subprocess.run([sys.executable, "-m", "skynet_tasks.local.moto_main", "--faults", "latency", "-p", "1"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "unknown fault mode 'latency'" in done.stderr


# ---- conflicts ------------------------------------------------------------------

@pytest.fixture(scope="module")
def conflicting():
    server = MotoServer.start(faults="conflicts=400")
    make_state_table(client_of(server, "dynamodb"))
    yield server
    server.stop()


def in_background(call) -> tuple[threading.Thread, list]:
    """Start ``call`` in a thread; the list gets its (code, status)."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(code_of(call)))
    thread.start()
    time.sleep(0.15)  # well inside the first transaction's 400 ms hold
    return thread, result


def test_a_transaction_that_overlaps_another_on_an_item_is_cancelled_with_transaction_conflict(conflicting):
    db = client_of(conflicting, "dynamodb")
    before = conflicting.fault_counts().get("TransactionConflict", 0)
    first, first_result = in_background(lambda: db.transact_write_items(TransactItems=[put("group", "1"),
                                                                                       put("t1")]))
    try:
        db.transact_write_items(TransactItems=[put("t2"), put("group", "2")])
    except ClientError as error:
        second = error
    else:
        pytest.fail("the overlapping transaction was served")
    first.join()

    assert first_result == [("ok", 200)]
    assert second.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in second.response["CancellationReasons"]] == ["None", "TransactionConflict"]
    assert transaction_conflict(second) and not condition_failed(second)  # nothing written, nothing refused
    assert lost_to_another_write(second)  # what a decision reads as "another write won: decide again"
    item = db.get_item(TableName="state", Key={"pk": {"S": "group"}, "sk": {"S": "x"}}, ConsistentRead=True)
    assert item["Item"]["v"] == {"N": "1"}  # the cancelled one changed nothing
    assert "Item" not in db.get_item(TableName="state", Key={"pk": {"S": "t2"}, "sk": {"S": "x"}})
    assert conflicting.fault_counts()["TransactionConflict"] == before + 1


def test_a_single_write_that_meets_a_transaction_in_progress_gets_transaction_conflict_exception(conflicting):
    db = client_of(conflicting, "dynamodb")
    first, first_result = in_background(lambda: db.transact_write_items(TransactItems=[put("held")]))
    single = code_of(lambda: db.put_item(TableName="state", Item={"pk": {"S": "held"}, "sk": {"S": "x"}}))
    other = code_of(lambda: db.put_item(TableName="state", Item={"pk": {"S": "free"}, "sk": {"S": "x"}}))
    first.join()

    assert single == ("TransactionConflictException", 400)
    assert other == ("ok", 200)  # only the held item is refused
    assert first_result == [("ok", 200)]
    assert conflicting.fault_counts()["TransactionConflictException"] >= 1


def test_transactions_that_do_not_overlap_are_served():
    plain = MotoServer.start()  # no fault mode: overlapping transactions are served one after the other
    try:
        db = client_of(plain, "dynamodb")
        make_state_table(db)
        first, first_result = in_background(lambda: db.transact_write_items(TransactItems=[put("g", "1")]))
        second = code_of(lambda: db.transact_write_items(TransactItems=[put("g", "2")]))
        first.join()
    finally:
        plain.stop()
    assert first_result == [("ok", 200)] and second == ("ok", 200)


# ---- throttle -------------------------------------------------------------------

@pytest.fixture(scope="module")
def throttled():
    server = MotoServer.start(faults="throttle=1")  # every request: the codes are certain
    yield server
    server.stop()


def test_throttled_dynamodb_answers_as_dynamodb_does(throttled):
    db = client_of(throttled, "dynamodb")
    key = {"pk": {"S": "a"}, "sk": {"S": "x"}}
    assert code_of(lambda: db.get_item(TableName="state", Key=key)) == ("ProvisionedThroughputExceededException", 400)
    assert code_of(lambda: db.put_item(TableName="state", Item=key)) == ("ProvisionedThroughputExceededException", 400)
    assert code_of(lambda: db.transact_write_items(TransactItems=[put("a")])) == (
        "ProvisionedThroughputExceededException", 400)
    assert code_of(db.list_tables) == ("ThrottlingException", 400)


def test_throttled_sqs_and_s3_answer_as_they_do(throttled):
    sqs, s3 = client_of(throttled, "sqs"), client_of(throttled, "s3")
    assert code_of(lambda: sqs.send_message(QueueUrl=f"{throttled.endpoint}/123456789012/q", MessageBody="m")) == (
        "RequestThrottled", 400)
    assert code_of(sqs.list_queues) == ("RequestThrottled", 400)
    assert code_of(lambda: s3.put_object(Bucket="b", Key="k", Body=b"x" * 100_000)) == ("SlowDown", 503)
    assert code_of(s3.list_buckets) == ("SlowDown", 503)
    counts = throttled.fault_counts()
    assert counts["throttled:sqs"] >= 2 and counts["throttled:s3"] >= 2


def test_only_the_services_named_are_throttled():
    server = MotoServer.start(faults="throttle=1:s3")
    try:
        assert code_of(client_of(server, "s3").list_buckets) == ("SlowDown", 503)
        assert code_of(client_of(server, "sqs").list_queues) == ("ok", 200)
        assert code_of(client_of(server, "dynamodb").list_tables) == ("ok", 200)
    finally:
        server.stop()


def test_a_fraction_of_requests_is_throttled_and_the_rest_served():
    server = MotoServer.start(faults="throttle=0.3")
    try:
        sqs = client_of(server, "sqs")
        codes = [code_of(sqs.list_queues)[0] for _ in range(200)]
    finally:
        server.stop()
    assert 20 <= codes.count("RequestThrottled") <= 100, codes.count("RequestThrottled")  # about 60
    assert set(codes) == {"ok", "RequestThrottled"}


def test_skynet_local_up_refuses_an_unknown_mode_before_starting_anything(tmp_path):
    from click.testing import CliRunner

    from skynet_tasks.cli import main

    result = CliRunner().invoke(main, ["local", "up", "--faults", "conflicts,latency", "--dir", str(tmp_path / "c")])
    assert result.exit_code == 4 and "unknown fault mode 'latency'" in result.output
    assert not (tmp_path / "c").exists()
