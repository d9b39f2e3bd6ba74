"""``skynet stack deploy`` as a library: check the parameters, upload the agent wheel, create or update the stack.

The wheel lives in the stack's own repo bucket, which does not exist before the stack does. So a
new stack is made in two phases: first with every auto scaling group's MinSize and DesiredCapacity
at 0 (no instance boots while the wheel is missing), then, once the wheel is uploaded, an update
with the real capacities. An existing stack has its bucket: the wheel goes first, then one update.
A stack left at capacity 0 by a deploy that stopped between the phases carries the tag
``skynet-deploy=capacity-pending``, and the next deploy restores the capacities.

The webhook receiver's Lambda code (``lambda_zip``, built from the same wheel) follows the same
path: a new stack is created with ``WebhookCodeKey`` empty (the template then makes no function),
and the update that restores the capacities names the uploaded zip.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from skynet_tasks.agent import AgentError
from skynet_tasks.stacks import StackError
from skynet_tasks.stacks.cfn import load_template
from skynet_tasks.stacks.lambda_zip import build_lambda_zip, lambda_zip_ref, upload_lambda_zip
from skynet_tasks.stacks.parameters import ParameterError, check_parameters
from skynet_tasks.stacks.wheels import WheelRef, build_wheel, upload_wheel, wheel_ref

log = logging.getLogger(__name__)

REPO_BUCKET = "RepoBucket"  # the template's logical id of the bucket instances download the wheel from
WHEEL_PARAMETERS = ("SkynetWheelKey", "SkynetWheelSha256")
WEBHOOK_CODE = "WebhookCodeKey"  # set by the deploy, like the wheel's parameters
WEBHOOK_REPOSITORY = "GitHubRepository"  # the stack has a webhook receiver when this is set
PHASE_TAG = "skynet-deploy"
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]  # the template names its IAM roles
MAX_TEMPLATE_BODY = 51_200  # CreateStack's TemplateBody limit, in bytes
UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
             "IMPORT_ROLLBACK_COMPLETE"}


class DeployError(StackError):
    """A stack that cannot be created or updated (its state, or CloudFormation's answer)."""


@dataclass(frozen=True)
class DeployResult:
    """What ``stack deploy`` did: created, updated or left the stack unchanged, and with which wheel."""

    stack_name: str
    action: str  # "created", "updated" or "unchanged"
    bucket: str
    wheel: WheelRef


def stack_name_for(env: str) -> str:
    """The name of the stack that manages ``env`` unless told otherwise."""
    return f"skynet-{env}"


def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack called ``name``, or None if there is none."""
    try:
        return dict(cfn.describe_stacks(StackName=name)["Stacks"][0])
    except ClientError as error:
        if "does not exist" in str(error.response.get("Error", {}).get("Message", "")):
            return None
        raise


def repo_bucket(cfn: Any, name: str) -> str:
    """The physical name of the stack's repo bucket."""
    detail = cfn.describe_stack_resource(StackName=name, LogicalResourceId=REPO_BUCKET)["StackResourceDetail"]
    return str(detail["PhysicalResourceId"])


def capacity_parameters(template: Mapping[str, Any]) -> list[str]:
    """The parameters that set an auto scaling group's MinSize or DesiredCapacity."""
    found = []
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::AutoScaling::AutoScalingGroup":
            continue
        for prop in ("MinSize", "DesiredCapacity"):
            value = resource.get("Properties", {}).get(prop)
            if isinstance(value, dict) and "Ref" in value:
                found.append(str(value["Ref"]))
    return sorted(set(found))


def deploy_stack(cfn: Any, s3: Any, template_path: Path, stack_name: str, values: Mapping[str, str],
                 wheel: Path | None = None, waiter_config: Mapping[str, int] | None = None) -> DeployResult:
    """Create or update ``stack_name`` from ``template_path`` with ``values``, booting ``wheel`` (built if None).

    Every parameter is checked before anything is built, uploaded or created.
    """
    template = load_template(template_path)
    body = template_path.read_text()
    if len(body.encode()) > MAX_TEMPLATE_BODY:
        raise DeployError(f"{template_path} is over CloudFormation's {MAX_TEMPLATE_BODY}-byte TemplateBody limit")
    declared = template.get("Parameters", {})
    chosen = sorted(set(values) & {*WHEEL_PARAMETERS, WEBHOOK_CODE})
    if chosen:
        raise ParameterError(f"{', '.join(chosen)} is set by the deploy from the wheel: pass --wheel instead")
    existing = describe_stack(cfn, stack_name)
    if existing is not None and existing["StackStatus"] not in UPDATABLE:
        raise DeployError(f"stack {stack_name} is {existing['StackStatus']} and cannot be updated"
                          + ("; delete it first" if existing["StackStatus"] == "ROLLBACK_COMPLETE" else ""))
    previous = {p["ParameterKey"] for p in (existing or {}).get("Parameters", [])}
    check_parameters(declared, values, previous | {*WHEEL_PARAMETERS, WEBHOOK_CODE})
    wait = {"Delay": 15, "MaxAttempts": 240, **(waiter_config or {})}
    with tempfile.TemporaryDirectory(prefix="skynet-wheel-") as scratch:
        path = wheel if wheel is not None else build_wheel(Path(scratch))
        try:
            ref = wheel_ref(path)
        except AgentError as error:
            raise ParameterError(str(error)) from None
        full = {**values, **ref.parameters()}
        before = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (existing or {}).get("Parameters", [])}
        wants_webhook = WEBHOOK_CODE in declared and values.get(WEBHOOK_REPOSITORY, before.get(WEBHOOK_REPOSITORY, ""))
        code = build_lambda_zip(path, Path(scratch)) if wants_webhook else None
        if code is not None:
            full[WEBHOOK_CODE] = lambda_zip_ref(code).key
        check_parameters(declared, full, previous)  # the wheel's name must pass SkynetWheelKey's pattern too
        if existing is None:
            return _create(cfn, s3, template, body, stack_name, full, path, code, wait)
        return _update(cfn, s3, template, body, existing, full, path, code, wait)


def _create(cfn: Any, s3: Any, template: Mapping[str, Any], body: str, name: str, full: dict[str, str],
            wheel: Path, code: Path | None, wait: dict[str, int]) -> DeployResult:
    capacity = capacity_parameters(template)
    first = {**full, **{p: "0" for p in capacity}, **({WEBHOOK_CODE: ""} if code is not None else {})}
    log.info("stack %s: creating with capacities at 0 until the wheel is uploaded", name)
    cfn.create_stack(StackName=name, TemplateBody=body, Capabilities=CAPABILITIES,
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in first.items()],
                     Tags=[{"Key": PHASE_TAG, "Value": "capacity-pending"}])
    _wait(cfn, "stack_create_complete", name, wait)
    bucket = repo_bucket(cfn, name)
    ref = upload_wheel(s3, bucket, wheel)
    if code is not None:
        upload_lambda_zip(s3, bucket, code)
    _restore_capacity(cfn, template, name, full, wait)
    return DeployResult(name, "created", bucket, ref)


def _restore_capacity(cfn: Any, template: Mapping[str, Any], name: str, full: Mapping[str, str],
                      wait: dict[str, int]) -> None:
    declared = template.get("Parameters", {})
    # The values the create was given, with the real capacities; the rest stay at their Default (same template).
    values = {**full, **{k: str(full.get(k, declared[k].get("Default", "0"))) for k in capacity_parameters(template)}}
    log.info("stack %s: wheel uploaded, setting the auto scaling groups' capacities", name)
    cfn.update_stack(StackName=name, UsePreviousTemplate=True, Capabilities=CAPABILITIES,
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
                     Tags=[{"Key": PHASE_TAG, "Value": "done"}])
    _wait(cfn, "stack_update_complete", name, wait)


def _kept(stack: Mapping[str, Any], defaults: Mapping[str, Any], given: Mapping[str, str]) -> list[dict[str, Any]]:
    """UsePreviousValue for each parameter of ``stack`` not ``given``, except one at its template Default.

    Left out, a parameter takes its Default, the value it has: the same on AWS, and moto cannot
    UsePreviousValue a parameter the stack was created without (it answers 500).
    """
    kept = []
    for parameter in stack.get("Parameters", []):
        key = parameter["ParameterKey"]
        if key in given or key not in defaults:
            continue
        default = defaults[key]
        if default is None or str(default) != parameter.get("ParameterValue"):
            kept.append({"ParameterKey": key, "UsePreviousValue": True})
    return kept


def _update(cfn: Any, s3: Any, template: Mapping[str, Any], body: str, existing: Mapping[str, Any],
            full: dict[str, str], wheel: Path, code: Path | None, wait: dict[str, int]) -> DeployResult:
    name = str(existing["StackName"])
    bucket = repo_bucket(cfn, name)
    ref = upload_wheel(s3, bucket, wheel)  # before the stack names it: no instance may boot a missing key
    if code is not None:
        upload_lambda_zip(s3, bucket, code)
    declared = template.get("Parameters", {})
    tags = {t["Key"]: t["Value"] for t in existing.get("Tags", [])}
    values = dict(full)
    if tags.get(PHASE_TAG) == "capacity-pending":
        # A deploy stopped between its phases: the zeros are its, not the operator's.
        for key in capacity_parameters(template):
            values.setdefault(key, str(declared[key].get("Default", "0")))
    parameters: list[dict[str, Any]] = [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]
    parameters += _kept(existing, {k: spec.get("Default") for k, spec in declared.items()}, values)
    try:
        cfn.update_stack(StackName=name, TemplateBody=body, Capabilities=CAPABILITIES, Parameters=parameters,
                         Tags=[{"Key": PHASE_TAG, "Value": "done"}])
    except ClientError as error:
        # CloudFormation refuses an update that changes nothing; for a deploy that is success.
        if "No updates are to be performed" in str(error):
            return DeployResult(name, "unchanged", bucket, ref)
        raise DeployError(f"stack {name}: {error}") from None
    _wait(cfn, "stack_update_complete", name, wait)
    return DeployResult(name, "updated", bucket, ref)


def point_stack_at_wheel(cfn: Any, name: str, ref: WheelRef, waiter_config: Mapping[str, int] | None = None) -> bool:
    """Make the stack's new instances boot ``ref``, changing nothing else; False if it already did."""
    stack = describe_stack(cfn, name)
    if stack is None:
        raise DeployError(f"no stack {name}")
    previous = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    if all(previous.get(k) == v for k, v in ref.parameters().items()):
        return False
    summary = cfn.get_template_summary(StackName=name)
    defaults = {p["ParameterKey"]: p.get("DefaultValue") for p in summary.get("Parameters", [])}
    parameters: list[dict[str, Any]] = [{"ParameterKey": k, "ParameterValue": v} for k, v in ref.parameters().items()]
    parameters += _kept(stack, defaults, ref.parameters())
    try:
        cfn.update_stack(StackName=name, UsePreviousTemplate=True, Capabilities=CAPABILITIES, Parameters=parameters)
    except ClientError as error:
        raise DeployError(f"stack {name}: {error}") from None
    _wait(cfn, "stack_update_complete", name, {"Delay": 15, "MaxAttempts": 240, **(waiter_config or {})})
    return True


def _wait(cfn: Any, waiter: str, name: str, config: dict[str, int]) -> None:
    try:
        cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig=config)
    except WaiterError as error:
        stack = describe_stack(cfn, name) or {}
        raise DeployError(f"stack {name}: {stack.get('StackStatus', 'gone')} "
                          f"({stack.get('StackStatusReason') or error})") from None
