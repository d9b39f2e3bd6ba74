"""Who is calling AWS: the ARN STS gives for the credentials in use, for the audit trail.

Trust: the ARN is STS's answer for the request's own signature, so it names whoever holds the
credentials, unlike a login name or an environment variable, which the caller chooses.
``GetCallerIdentity`` needs no permission (AWS answers it even under an explicit deny), so any
credentials that can act can say who they are.
"""

from __future__ import annotations

from skynet_tasks.aws import Aws


def caller_arn(aws: Aws) -> str:
    """The ARN of the identity whose credentials ``aws`` signs with (STS ``GetCallerIdentity``)."""
    return str(aws.client("sts").get_caller_identity()["Arn"])
