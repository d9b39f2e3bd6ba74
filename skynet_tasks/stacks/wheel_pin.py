"""The SSM parameter that pins the agent wheel new instances boot (``/skynet/<env>/agent-wheel``).

The stack makes it from its SkynetWheelKey and SkynetWheelSha256 parameters, as JSON
``{"key": …, "sha256": …}``, and an instance's user data reads it at first boot. So the
pin is not rendered into the launch template: a new pin needs no new launch template
version, and a launch template that an update failed to re-render (moto's CloudFormation
keeps a ``Fn::Sub`` of parameters as first rendered) cannot hold an old pin.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.stacks import StackError
from skynet_tasks.stacks.wheels import WheelRef

PIN_RESOURCE = "AgentWheelParameter"  # its logical id in cloudformation/php-nginx.yaml


def pin_value(ref: WheelRef) -> str:
    """The parameter's value for ``ref``: the same JSON the stack renders from its parameters."""
    return json.dumps({"key": ref.key, "sha256": ref.sha256})


def stack_pin(cfn: Any, stack: str) -> str | None:
    """The name of ``stack``'s wheel pin parameter; None if its template has none (instances read the
    pin from their launch template then)."""
    try:
        detail = cfn.describe_stack_resource(StackName=stack, LogicalResourceId=PIN_RESOURCE)["StackResourceDetail"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None  # a stack of an older template
        raise StackError(f"stack {stack}: {error}") from None
    return detail.get("PhysicalResourceId") or None


def write_pin(cfn: Any, ssm: Any, stack: str, ref: WheelRef) -> str | None:
    """Point ``stack``'s wheel pin at ``ref``; return the parameter's name, None if the stack has no pin.

    Called once the stack's own parameters name ``ref``: on AWS the stack update has written the
    same value already (this changes nothing CloudFormation would call drift); on an emulator whose
    update does not re-render the parameter, this is what moves it.
    """
    name = stack_pin(cfn, stack)
    if name is None:
        return None
    try:
        ssm.put_parameter(Name=name, Value=pin_value(ref), Type="String", Overwrite=True)
    except ClientError as error:
        raise StackError(f"wheel pin {name}: {error}") from None
    return name


def read_pin(ssm: Any, name: str) -> dict[str, str]:
    """The pin as instances read it: ``{"key": …, "sha256": …}``."""
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as error:
        raise StackError(f"wheel pin {name}: {error}") from None
    pin = json.loads(value)
    if not isinstance(pin, dict) or set(pin) != {"key", "sha256"}:
        raise StackError(f"wheel pin {name} is not {{\"key\", \"sha256\"}}: {value!r}")
    return {"key": str(pin["key"]), "sha256": str(pin["sha256"])}
