"""Checking stack parameter values against a template's Parameters before CloudFormation sees them.

CloudFormation checks the same rules, but only once ``create_stack`` is called; checking first means
a typo is refused before a wheel is uploaded or a stack half-made. The rules are the template's own:
``AllowedValues``, ``AllowedPattern`` (the whole value must match, as in CloudFormation),
``MinLength``/``MaxLength``, ``Number`` values and ``MinValue``/``MaxValue``. For list types the rules
apply to each item. The AWS-specific types (``AWS::EC2::VPC::Id``…) are checked by CloudFormation
against the account, which only it can do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from skynet_tasks.stacks import StackError

# CloudFormation's Number: an integer or a decimal ("nan" or "1e3", which float() takes, are not numbers there).
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class ParameterError(StackError):
    """A parameter value the template refuses, or one that is missing."""


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """``["Name=Value", ...]`` as a dict; a malformed or repeated name is refused."""
    values: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise ParameterError(f"{assignment!r} is not Name=Value")
        if name in values:
            raise ParameterError(f"parameter {name} is given twice")
        values[name] = value
    return values


def check_parameters(declared: Mapping[str, Any], values: Mapping[str, str],
                     previous: Iterable[str] = ()) -> None:
    """Refuse unknown names, values that break their parameter's rules, and missing required parameters.

    ``previous`` names the parameters an existing stack already has a value for: an update may
    leave those out (they keep their value), a create may not.
    """
    check_given(declared, values)
    kept = set(previous)
    missing = sorted(name for name, spec in declared.items()
                     if name not in values and "Default" not in spec and name not in kept)
    if missing:
        raise ParameterError(f"missing required parameter {', '.join(missing)} (no Default in the template): "
                             f"give it with --param NAME=VALUE")


def check_given(declared: Mapping[str, Any], values: Mapping[str, str]) -> None:
    """Refuse unknown names and values that break their parameter's rules (missing ones are not checked)."""
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ParameterError(f"the template has no parameter {', '.join(unknown)}; "
                             f"it has {', '.join(sorted(declared))}")
    for name, value in values.items():
        check_value(name, declared[name], value)


def check_value(name: str, spec: Mapping[str, Any], value: str) -> None:
    """Refuse ``value`` if it breaks one of the rules of parameter ``name`` (``spec`` from the template)."""
    kind = str(spec.get("Type", "String"))
    is_list = kind.startswith("List<") or kind == "CommaDelimitedList"
    items = value.split(",") if is_list else [value]
    numeric = kind in ("Number", "List<Number>")
    for item in items:
        if numeric:
            _check_number(name, spec, item)
        allowed = spec.get("AllowedValues")
        if allowed is not None and item not in [str(a) for a in allowed]:
            raise ParameterError(f"{name}: {item!r} is not one of the AllowedValues "
                                 f"{', '.join(str(a) for a in allowed)}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and re.fullmatch(str(pattern), item) is None:
            raise ParameterError(f"{name}: {item!r} does not match its AllowedPattern {pattern}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise ParameterError(f"{name}: {value!r} is shorter than its MinLength {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise ParameterError(f"{name}: {value!r} is longer than its MaxLength {spec['MaxLength']}")


def _check_number(name: str, spec: Mapping[str, Any], item: str) -> None:
    if _NUMBER.fullmatch(item) is None:
        raise ParameterError(f"{name}: {item!r} is not a Number")
    number = float(item)
    if "MinValue" in spec and number < float(spec["MinValue"]):
        raise ParameterError(f"{name}: {item} is below its MinValue {spec['MinValue']}")
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        raise ParameterError(f"{name}: {item} is above its MaxValue {spec['MaxValue']}")
