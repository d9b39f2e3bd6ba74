"""Reading CloudFormation templates, and filling their parameters for ``skynet stack render``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from skynet_tasks.stacks import StackError
from skynet_tasks.stacks.parameters import check_given

# The templates live in cloudformation/ at the repository root; skynet_tasks/cloudformation is a
# symlink to it, so a checkout reads them in place and a wheel carries a copy as package data.
# A wheel is always unpacked onto disk, so the resource is a real path that cfn-lint can read.
TEMPLATES = Path(str(resources.files("skynet_tasks") / "cloudformation"))


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub…) read as their long JSON forms."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    key = suffix if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {key: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {key: loader.construct_sequence(node, deep=True)}
    if isinstance(node, yaml.MappingNode):
        return {key: loader.construct_mapping(node, deep=True)}
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{suffix}", node.start_mark)


CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict[str, Any]:
    """The template at ``path``, its short tags read as long forms; StackError if it is not one."""
    try:
        data = yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506  # nosec B506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as error:
        raise StackError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict) or "Resources" not in data:
        raise StackError(f"{path} is not a CloudFormation template")
    return data


def render(path: Path, values: dict[str, str]) -> str:
    """The template as JSON, with ``values`` as its parameters' defaults (checked as ``stack deploy`` checks them)."""
    template = load_template(path)
    parameters = template.get("Parameters", {})
    check_given(parameters, values)
    for name, value in values.items():
        parameters[name]["Default"] = value
    return json.dumps(template, indent=1)
