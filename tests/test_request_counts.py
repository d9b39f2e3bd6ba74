"""The local AWS counting what it serves (``moto_main --count-requests``, ``skynet_tasks.local.request_counts``):
what the benchmarks read instead of counting at a proxy of their own."""

from __future__ import annotations

import pytest

from skynet_tasks.aws import aws_for
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.request_counts import classify

pytestmark = pytest.mark.timeout(120)


def test_moto_counts_each_request_by_service_and_operation_and_the_s3_bytes_read():
    server = MotoServer.start(count_requests=True)
    try:
        aws = aws_for(server.environment())
        queue = aws.sqs.create_queue(QueueName="counted")["QueueUrl"]
        aws.sqs.send_message(QueueUrl=queue, MessageBody="one")
        aws.sqs.send_message(QueueUrl=queue, MessageBody="two")
        aws.s3.create_bucket(Bucket="skynet-local-repo")
        aws.s3.put_object(Bucket="skynet-local-repo", Key="release.tar.gz", Body=b"x" * 1000)
        aws.s3.get_object(Bucket="skynet-local-repo", Key="release.tar.gz")["Body"].read()
        aws.dynamodb.list_tables()

        requests, s3_bytes = server.request_counts()
    finally:
        server.stop()

    assert requests[("sqs", "CreateQueue")] == 1 and requests[("sqs", "SendMessage")] == 2
    assert requests[("s3", "PUT bucket")] == 1 and requests[("s3", "PUT object")] == 1
    assert requests[("s3", "GET object")] == 1 and requests[("dynamodb", "ListTables")] == 1
    assert s3_bytes == {"/skynet-local-repo/release.tar.gz": 1000}


def test_a_server_that_does_not_count_says_so():
    server = MotoServer.start()
    try:
        with pytest.raises(RuntimeError, match="--count-requests"):
            server.request_counts()
    finally:
        server.stop()


def test_a_query_protocol_request_is_named_by_its_action():
    # kombu's asynchronous SQS client speaks the query protocol: the operation is in the body
    assert classify("", b"Action=ReceiveMessage&QueueUrl=x", "POST", "/") == ("sqs", "ReceiveMessage")
    assert classify("DynamoDB_20120810.TransactWriteItems", b"{}", "POST", "/") == ("dynamodb", "TransactWriteItems")
    assert classify("", b"", "GET", "/bucket/key") == ("s3", "GET object")
