"""``python -m skynet_tasks.local.moto_main``: moto's server, with four of its behaviours made AWS-like.

Two patches change only how much CPU an answer costs; the third makes a FIFO queue's
message group as exclusive under long polling as it is on SQS; the fourth lets a service
principal's stand-in assume the roles that trust that service (``patch_service_principals``).

**SQS long poll.**

moto 5's ``ReceiveMessage`` long poll waits with ``Condition.wait_for(lambda:
queue.messages)``, which returns at once while *any* message is visible. On a FIFO
queue whose message group is in flight, the waiting messages are visible but not
deliverable, so every long poll on the group's queue spins at 100% of a core for its
whole wait (``tests/test_motoserver.py`` shows it). Skynet's conductors long-poll the
maintenance FIFO while one of them holds the group, so on a small machine moto starved
everything else and a hand-off took seconds. Real SQS holds such a poll idle.

The fix here waits on the queue's condition instead, woken by a new message and
re-checking at least every ``RECHECK`` seconds (a visibility timeout ending or a
group being freed do not notify).

**SQS FIFO message groups.** moto 5's long poll takes the set of message groups in
flight once, when it starts, and delivers from any group not in that set for its whole
wait. Two conductors long-polling the maintenance queue then both receive messages of
the group, one after the other's receive began: the group runs steps in parallel, every
step but one loses its conditional write and decides again, and a hand-off waited
seconds for the retries. Real SQS delivers a group's next message only once the one in
flight is deleted (or its visibility ends). Here every receive of a queue looks at the
groups in flight afresh, one receive at a time, between waits. Duplicate and parallel
deliveries are still tested, on purpose: the soak's ``duplicate-delivery`` fault and the
conductor's model test.

A deleted message also wakes the queue's long polls: on a FIFO queue it frees its group, whose
next message SQS hands to a waiting poll at once. moto notifies only new messages, so the
group's next step (a report queued behind the step before) waited for the ``RECHECK``.

**DynamoDB transactions.** moto 5's ``TransactWriteItems`` keeps a deep copy of the
whole table *per item of the transaction*, to roll back if one of them fails. Every
conductor step is a transaction on the state table, which keeps every ticket of every
rollout, so a step cost time in proportion to the table's history: a 100-instance
rollout took ~0.9 s per ticket, and a long test run slowed as it went. The fix keeps a
copy of the items the transaction names instead, and puts those back on failure: the
same all-or-nothing result, at a cost in proportion to the transaction. DynamoDB requests are
served one at a time, so that no request sees a transaction half-applied, or is undone by its
rollback (moto's whole-table rollback could undo a concurrent write, too).
"""

from __future__ import annotations

import copy
import os
import threading
import time
from typing import Any

# How often a waiting long poll looks again without being woken; settable for tests that show
# what wakes it.
RECHECK = float(os.environ.get("SKYNET_MOTO_RECHECK", "0.1"))


def patch_long_poll() -> None:
    from moto.sqs.models import Queue

    def wait_for_messages(self: Queue, timeout: int) -> None:
        with self._messages_lock:
            self._messages_lock.wait(timeout=min(timeout, RECHECK))

    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def patch_fifo_receive() -> None:
    """Receives of one queue take turns, each with a fresh look at which message groups are in flight."""
    from moto.sqs.models import Queue, SQSBackend

    moto_receive = SQSBackend.receive_message
    turns: dict[str, threading.Lock] = {}
    turns_lock = threading.Lock()

    def receive_message(self: Any, queue_name: str, count: int, wait_seconds_timeout: int, visibility_timeout: int,
                        message_attribute_names: list[str] | None = None) -> list[Any]:
        queue = self.get_queue(queue_name)
        with turns_lock:
            turn = turns.setdefault(queue_name, threading.Lock())
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with turn:  # moto's receive with no wait looks once, at the groups in flight now
                received: list[Any] = moto_receive(self, queue_name, count, 0, visibility_timeout,
                                                   message_attribute_names)
            if received or time.monotonic() >= deadline:
                return received
            queue.wait_for_messages(max(deadline - time.monotonic(), 0))

    moto_delete = Queue.delete_message

    def delete_message(self: Queue, receipt_handle: str) -> None:
        moto_delete(self, receipt_handle)
        if self.fifo_queue:
            with self._messages_lock:
                self._messages_lock.notify_all()

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign]


def patch_transactions() -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    moto_transact = models.DynamoDBBackend.transact_write_items

    class TablesNotCopied:
        """Stands in for the ``copy`` module inside moto's backend: tables are not copied, items still are."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def named_item(backend: Any, entry: dict[str, Any]) -> tuple[Any, Any, Any, Any] | None:
        """The table, key and a copy of the item a transaction entry names; None if the entry is
        malformed (moto's own validation then refuses the transaction)."""
        try:
            ((kind, operation),) = entry.items()
            table = backend.get_table(operation["TableName"])
            hash_key, range_key = backend.get_keys_value(table, operation["Item" if kind == "Put" else "Key"])
        except (JsonRESTError, KeyError, TypeError, ValueError):
            return None
        return table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = [found for found in (named_item(self, entry) for entry in transact_items) if found is not None]
        try:
            moto_transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                if item is None:
                    table.delete_item(hash_key, range_key)
                elif range_key is None:
                    table.items[hash_key] = item
                else:
                    table.items[hash_key][range_key] = item
            raise

    one_at_a_time = threading.Lock()
    moto_call_action = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with one_at_a_time:
            return moto_call_action(self)

    models.copy = TablesNotCopied  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


# The local stand-in for an AWS service principal (EC2 assuming an instance role for its
# instances) is the IAM user of this name followed by the service's short name: ``aws-service-ec2``.
SERVICE_USER_PREFIX = "aws-service-"


def patch_service_principals() -> None:
    """Trust policies that name a service (``Principal: {Service: ec2.amazonaws.com}``) trust its stand-in.

    On AWS, EC2 itself assumes an instance's role and serves the credentials through instance
    metadata. moto 5.2 compares only ``Principal.AWS`` and fails with a TypeError on a
    service-only trust policy, so no one could assume the stack's instance roles. Here the local
    instance-metadata service plays EC2 as the IAM user ``aws-service-ec2``; any other caller is
    still refused, as on AWS.
    """
    from moto.iam.access_control import IAMPolicyStatement

    moto_check = IAMPolicyStatement._check_principal

    def check_principal(self: IAMPolicyStatement, principal: str) -> bool:
        expected = self._statement.get("Principal")
        if isinstance(expected, dict) and "AWS" not in expected and "Service" in expected:
            services = expected["Service"] if isinstance(expected["Service"], list) else [expected["Service"]]
            return any(principal.endswith(f":user/{SERVICE_USER_PREFIX}{service.split('.')[0]}")
                       for service in services)
        return bool(moto_check(self, principal))

    IAMPolicyStatement._check_principal = check_principal  # type: ignore[method-assign]


# IAM checks each item of a transaction as its own action on its own table (there is no
# dynamodb:TransactWriteItems action in IAM).
_TRANSACT_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                          "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def patch_resource_authorization() -> None:
    """IAM decides on the resource AWS decides on, so least-privilege policies work as on AWS.

    moto 5.2 authorizes every DynamoDB request, and SQS ``CreateQueue``, against the resource
    ``*``: a policy scoped to table or queue ARNs, as least privilege asks, refuses them all.
    It also checks ``dynamodb:TransactWriteItems``, which IAM does not have. AWS checks a
    request against its table's ARN (an index's for a query on one), each item of a
    transaction or batch as its own action on its own table, and ``CreateQueue`` against the
    ARN of the queue it would create. Secrets Manager, too, is authorized against ``*`` in moto,
    and against the secret's ARN on AWS.

    moto authorizes every SSM request against ``*`` too. AWS checks ``GetParameter``,
    ``PutParameter``, ``DeleteParameter`` and ``GetParameterHistory`` against the parameter's
    ARN, ``arn:aws:ssm:<region>:<account>:parameter/<name without its leading slash>`` (IAM's
    Service Authorization Reference, "Actions, resources, and condition keys for AWS Systems
    Manager": https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html;
    and https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-access.html).
    """
    from moto.dynamodb.responses import DynamoHandler
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sqs.responses import SQSResponse
    from moto.ssm.responses import SimpleSystemManagerResponse

    def dynamodb_checks(handler: Any) -> list[tuple[str, str]]:
        body, action = handler.body or {}, handler._get_action()
        region, account = handler.region, handler.current_account

        def arn(table: str, index: str | None = None) -> str:
            return f"arn:aws:dynamodb:{region}:{account}:table/{table}" + (f"/index/{index}" if index else "")

        if action in ("TransactWriteItems", "TransactGetItems"):
            checks = []
            for entry in body.get("TransactItems") or []:
                ((kind, operation),) = entry.items()
                checks.append((_TRANSACT_ITEM_ACTIONS.get(kind, action), arn(operation.get("TableName", "*"))))
            return checks
        if action in ("BatchGetItem", "BatchWriteItem"):
            return [(action, arn(table)) for table in body.get("RequestItems") or {}]
        if body.get("TableName"):
            return [(action, arn(body["TableName"], body.get("IndexName")))]
        return [(action, "*")]

    def authorize(self: Any, resource: str = "*") -> None:
        from moto.iam.access_control import IAMRequest

        for action, arn in dynamodb_checks(self) or [(self._get_action(), "*")]:
            self._get_action = lambda action=action: action  # what moto's authorizer reads as the action
            try:
                self._authenticate_and_authorize_action(IAMRequest, arn)
            finally:
                del self._get_action

    moto_resource = SQSResponse._determine_resource

    def sqs_resource(self: Any) -> str:
        if self._get_action() == "CreateQueue":
            return f"arn:aws:sqs:{self.region}:{self.current_account}:{self._get_param('QueueName')}"
        return str(moto_resource(self))

    def ssm_resource(self: Any) -> str:
        name = self._get_param("Name") if self._get_action() in _SSM_ONE_PARAMETER else None
        if not isinstance(name, str) or not name:
            return "*"
        if name.startswith("arn:"):
            return name.split(":parameter/", 1)[0] + ":parameter/" + _parameter_path(name.split(":parameter/", 1)[-1])
        return f"arn:aws:ssm:{self.region}:{self.current_account}:parameter/{_parameter_path(name)}"

    def secret_resource(self: Any) -> str:
        secret_id = self._get_param("SecretId")
        if not secret_id:
            return "*"
        try:
            return str(self.backend.secrets[secret_id].arn)
        except KeyError:  # no such secret: the request fails after authorization, as on AWS
            return f"arn:aws:secretsmanager:{self.region}:{self.current_account}:secret:{secret_id}"

    DynamoHandler._authenticate_and_authorize_normal_action = authorize  # type: ignore[method-assign]
    SecretsManagerResponse._determine_resource = secret_resource  # type: ignore[attr-defined]
    SQSResponse._determine_resource = sqs_resource  # type: ignore[method-assign]
    SimpleSystemManagerResponse._determine_resource = ssm_resource  # type: ignore[attr-defined]


# SSM actions on one parameter named by ``Name``, which IAM checks against that parameter's ARN.
_SSM_ONE_PARAMETER = {"GetParameter", "PutParameter", "DeleteParameter", "GetParameterHistory"}


def _parameter_path(name: str) -> str:
    """A parameter name as its ARN ends: no leading slash, no ``:version``/``:label`` selector."""
    return name.lstrip("/").split(":", 1)[0]


def main() -> None:
    import skynet_tasks.local.moto_cfn  # noqa: F401 - registers CloudFormation types moto lacks

    patch_service_principals()
    patch_resource_authorization()
    patch_long_poll()
    patch_fifo_receive()
    patch_transactions()
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()
