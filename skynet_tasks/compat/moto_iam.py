"""moto's IAM, decided as AWS decides: service principals, and the resource ARNs requests are checked on.

Three patches, all needed for least-privilege policies to mean locally what they mean on AWS:

- ``SERVICE_PRINCIPALS``: trust policies that name a service (``Principal: {Service:
  ec2.amazonaws.com}``) trust that service's local stand-in.
- ``RESOURCE_AUTHORIZATION``: DynamoDB, SQS ``CreateQueue``, Secrets Manager secrets and SNS
  topics (``Publish``, ``Subscribe``...) are authorized against the resource ARN AWS uses, not against ``*``.
- ``SSM_RESOURCES``: SSM parameters too, applied once moto imports SSM's code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from skynet_tasks.compat.patching import Patch, replace

# The local stand-in for an AWS service principal (EC2 assuming an instance role for its
# instances) is the IAM user of this name followed by the service's short name: ``aws-service-ec2``.
SERVICE_USER_PREFIX = "aws-service-"


def _apply_service_principals(stack: ExitStack) -> None:
    """On AWS, EC2 itself assumes an instance's role and serves the credentials through instance
    metadata. moto 5.2 compares only ``Principal.AWS`` and fails with a TypeError on a
    service-only trust policy, so no one could assume the stack's instance roles. Here the local
    instance-metadata service plays EC2 as the IAM user ``aws-service-ec2``; any other caller is
    still refused, as on AWS.
    """
    from moto.iam.access_control import IAMPolicyStatement

    def check_principal(self: IAMPolicyStatement, principal: str) -> bool:
        expected = self._statement.get("Principal")
        if isinstance(expected, dict) and "AWS" not in expected and "Service" in expected:
            services = expected["Service"] if isinstance(expected["Service"], list) else [expected["Service"]]
            return any(principal.endswith(f":user/{SERVICE_USER_PREFIX}{service.split('.')[0]}")
                       for service in services)
        return bool(moto_check(self, principal))

    moto_check = replace(stack, IAMPolicyStatement, "_check_principal", check_principal)


# IAM checks each item of a transaction as its own action on its own table (there is no
# dynamodb:TransactWriteItems action in IAM).
_TRANSACT_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                          "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}

# SSM actions on one parameter named by ``Name``, which IAM checks against that parameter's ARN.
_SSM_ONE_PARAMETER = {"GetParameter", "PutParameter", "DeleteParameter", "GetParameterHistory"}


def parameter_path(name: str) -> str:
    """A parameter name as its ARN ends: no leading slash, no ``:version``/``:label`` selector."""
    return name.lstrip("/").split(":", 1)[0]


# The IAM action that grants each SQS batch request (AWS has no permission of the batch's own name).
SQS_BATCH_PERMISSIONS = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
                         "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


@contextmanager
def checked_as(handler: Any, action: str) -> Iterator[None]:
    """Within, moto's authorizer reads ``action`` as ``handler``'s request's action (``_get_action``); after, the
    handler's own again (an instance attribute it had, or its class's method)."""
    own = handler.__dict__.get("_get_action")
    handler._get_action = lambda: action
    try:
        yield
    finally:
        if own is None:
            del handler._get_action
        else:
            handler._get_action = own


def dynamodb_checks(handler: Any) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM checks for the DynamoDB request ``handler`` serves."""
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


def _apply_resource_authorization(stack: ExitStack) -> None:
    """moto 5.2 authorizes every DynamoDB request, and SQS ``CreateQueue``, against the resource
    ``*``: a policy scoped to table or queue ARNs, as least privilege asks, refuses them all.
    It also checks ``dynamodb:TransactWriteItems``, which IAM does not have. AWS checks a
    request against its table's ARN (an index's for a query on one), each item of a
    transaction or batch as its own action on its own table, and ``CreateQueue`` and ``GetQueueUrl``
    against the ARN of the queue they name. Secrets Manager, too, is authorized against ``*`` in moto,
    and against the secret's ARN on AWS.

    moto authorizes SNS ``Publish`` against ``*`` as well; AWS checks it against the topic's ARN
    (the rollout notices' ``sns:Publish`` is granted on the env's topic only), and so ``Subscribe``,
    ``ListSubscriptionsByTopic`` and ``Unsubscribe`` (a group's members subscribe to its topic only).

    moto answers an SQS refusal in XML, also to a request of SQS's JSON protocol (botocore's): botocore
    cannot read it and names the error "403". AWS answers in the request's protocol, ``AccessDenied``; so
    does the patch, so that Skynet's code reads one refusal, not AWS's and moto's.

    moto checks an SQS batch request as its own action (``sqs:DeleteMessageBatch``), which IAM does
    not have: AWS grants the batch with its single action (``SQS_BATCH_PERMISSIONS``), so a policy
    granting ``sqs:DeleteMessage`` was refused the conductor's batch acknowledgement.
    """
    from moto.core.exceptions import AccessDeniedError, JsonRESTError
    from moto.dynamodb.responses import DynamoHandler
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sns.responses import SNSResponse
    from moto.sqs.responses import SQSResponse

    class JsonAccessDenied(JsonRESTError):
        code = 403

        def __init__(self, message: str) -> None:
            super().__init__("AccessDenied", message)

    def authorize(self: Any, resource: str = "*") -> None:
        from moto.iam.access_control import IAMRequest

        for action, arn in dynamodb_checks(self) or [(self._get_action(), "*")]:
            with checked_as(self, action):
                self._authenticate_and_authorize_action(IAMRequest, arn)

    def sqs_resource(self: Any) -> str:
        if self._get_action() in ("CreateQueue", "GetQueueUrl"):  # a queue named, not yet a URL
            return f"arn:aws:sqs:{self.region}:{self.current_account}:{self._get_param('QueueName')}"
        return str(moto_sqs_resource(self))

    def secret_resource(self: Any) -> str:
        secret_id = self._get_param("SecretId")
        if not secret_id:
            return "*"
        try:
            return str(self.backend.secrets[secret_id].arn)
        except KeyError:  # no such secret: the request fails after authorization, as on AWS
            return f"arn:aws:secretsmanager:{self.region}:{self.current_account}:secret:{secret_id}"

    def sns_resource(self: Any) -> str:
        action = self._get_action()
        if action in ("Publish", "PublishBatch", "Subscribe", "ListSubscriptionsByTopic"):
            return str(self._get_param("TopicArn") or self._get_param("TargetArn") or "*")
        if action == "Unsubscribe":  # checked on the subscription's topic: its ARN less the subscription's id
            return str(self._get_param("SubscriptionArn") or "*").rsplit(":", 1)[0]
        return "*"

    def sqs_authorize(self: Any, resource: str = "*") -> None:
        action = self._get_action()
        with checked_as(self, SQS_BATCH_PERMISSIONS.get(action, action)):
            try:
                moto_sqs_authorize(self, resource)
            except AccessDeniedError as refused:
                if not (self.headers.get("x-amz-target") or self.headers.get("X-Amz-Target")):
                    raise  # a query-protocol request: moto's XML answer is AWS's
                raise JsonAccessDenied(refused.message) from None

    # moto reads ``_determine_resource`` where a service defines it; Secrets Manager, SSM and SNS do not.
    replace(stack, DynamoHandler, "_authenticate_and_authorize_normal_action", authorize)
    replace(stack, SecretsManagerResponse, "_determine_resource", secret_resource, create=True)
    moto_sqs_resource = replace(stack, SQSResponse, "_determine_resource", sqs_resource)
    replace(stack, SNSResponse, "_determine_resource", sns_resource, create=True)
    moto_sqs_authorize = replace(stack, SQSResponse, "_authenticate_and_authorize_normal_action", sqs_authorize)


def _apply_ssm_resources(stack: ExitStack) -> None:
    """moto authorizes every SSM request against ``*`` too. AWS checks ``GetParameter``,
    ``PutParameter``, ``DeleteParameter`` and ``GetParameterHistory`` against the parameter's
    ARN, ``arn:aws:ssm:<region>:<account>:parameter/<name without its leading slash>`` (IAM's
    Service Authorization Reference, "Actions, resources, and condition keys for AWS Systems
    Manager": https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html;
    and https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-access.html).

    A patch of its own, applied when moto first imports SSM's code (``SSM_MODULE``): that code imports
    EC2's, over a second of CPU that a local AWS which never serves SSM would spend at every start.
    """
    from moto.ssm.responses import SimpleSystemManagerResponse

    def ssm_resource(self: Any) -> str:
        name = self._get_param("Name") if self._get_action() in _SSM_ONE_PARAMETER else None
        if not isinstance(name, str) or not name:
            return "*"
        if name.startswith("arn:"):
            return name.split(":parameter/", 1)[0] + ":parameter/" + parameter_path(name.split(":parameter/", 1)[-1])
        return f"arn:aws:ssm:{self.region}:{self.current_account}:parameter/{parameter_path(name)}"

    replace(stack, SimpleSystemManagerResponse, "_determine_resource", ssm_resource, create=True)


SSM_MODULE = "moto.ssm.responses"
SERVICE_PRINCIPALS = Patch("iam_service_principals", "moto", ">=5.2,<5.3", _apply_service_principals)
RESOURCE_AUTHORIZATION = Patch("iam_resources", "moto", ">=5.2,<5.3", _apply_resource_authorization)
SSM_RESOURCES = Patch("iam_ssm_resources", "moto", ">=5.2,<5.3", _apply_ssm_resources, on_import=SSM_MODULE)
PATCHES = (SERVICE_PRINCIPALS, RESOURCE_AUTHORIZATION, SSM_RESOURCES)


def install() -> None:
    """Install the IAM patches (each once)."""
    for patch in PATCHES:
        patch.install()


def uninstall() -> None:
    """Put moto's IAM decisions back."""
    for patch in reversed(PATCHES):
        patch.uninstall()
