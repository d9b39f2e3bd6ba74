"""CloudFormation types moto 5.2 lacks and the stack uses: ``AWS::Lambda::Url``, ``AWS::SecretsManager::Secret``.

moto's CloudFormation skips a resource type it has no model for (with a warning), and then fails
the whole stack on the first ``!GetAtt`` or output that names it. Both services exist in moto
(function URL configs, secrets with ``GetRandomPassword``); only the CloudFormation glue is
missing, so each model here creates the resource through moto's own backend, as its API would.

moto finds its models as the subclasses of ``CloudFormationModel`` (``parsing.get_model_list``).
A subclass cannot be taken back, so these models have the same shape without subclassing it, and
the patch adds them to that list (and drops moto's cached maps built from it), until uninstalled.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from skynet_tasks.compat.patching import Patch, replace

if TYPE_CHECKING:
    from moto.awslambda.models import FunctionUrlConfig

# GenerateSecretString's properties, as GetRandomPassword's arguments (AWS's defaults).
_PASSWORD_OPTIONS = {"PasswordLength": ("password_length", 32), "ExcludeCharacters": ("exclude_characters", ""),
                     "ExcludeNumbers": ("exclude_numbers", False), "ExcludePunctuation": ("exclude_punctuation", False),
                     "ExcludeUppercase": ("exclude_uppercase", False), "ExcludeLowercase": ("exclude_lowercase", False),
                     "IncludeSpace": ("include_space", False),
                     "RequireEachIncludedType": ("require_each_included_type", True)}


def _flag(value: Any) -> Any:
    # CloudFormation hands template booleans over as strings once parameters are substituted.
    return value.lower() == "true" if isinstance(value, str) and value.lower() in ("true", "false") else value


class FunctionUrl:
    """``AWS::Lambda::Url``: the function URL config of a moto Lambda function."""

    def __init__(self, config: FunctionUrlConfig) -> None:
        self.config = config

    @staticmethod
    def cloudformation_name_type() -> str:
        """The template property that names the resource (none: CloudFormation makes the name)."""
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        """The CloudFormation type this model plays."""
        return "AWS::Lambda::Url"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        """Whether ``!GetAtt`` can read ``attr`` of this resource."""
        return attr in ("FunctionArn", "FunctionUrl")

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str, **kwargs: Any) -> FunctionUrl:
        """Create the resource from its template properties in moto's backend."""
        props = cloudformation_json["Properties"]
        config = {key: props[key] for key in ("AuthType", "Cors", "InvokeMode") if key in props}
        from moto.awslambda.models import lambda_backends

        backend = lambda_backends[account_id][region_name]
        return cls(backend.create_function_url_config(props["TargetFunctionArn"], config))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: FunctionUrl,
                                        new_resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str) -> FunctionUrl:
        """Apply changed template properties to the resource; return it."""
        original_resource.config.update(cloudformation_json["Properties"])
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str) -> None:
        """Delete the resource from moto's backend."""
        from moto.awslambda.models import lambda_backends

        lambda_backends[account_id][region_name].delete_function_url_config(
            cloudformation_json["Properties"]["TargetFunctionArn"])

    def is_created(self) -> bool:
        """Whether the resource exists (it does as soon as it is made)."""
        return True

    @property
    def physical_resource_id(self) -> str:
        """The resource's ``Ref``: its ARN."""
        return str(self.config.function.function_arn)

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        """The value of ``!GetAtt`` ``attribute_name`` of this resource."""
        if attribute_name == "FunctionUrl":
            # AWS's attribute ends with a slash (https://<id>.lambda-url.<region>.on.aws/).
            return self.config.url.rstrip("/") + "/"
        if attribute_name == "FunctionArn":
            return self.config.function.function_arn
        raise NotImplementedError(attribute_name)


class Secret:
    """``AWS::SecretsManager::Secret`` with ``SecretString`` or ``GenerateSecretString``; its Ref is its ARN."""

    def __init__(self, arn: str, name: str) -> None:
        self.arn, self.name = arn, name

    @staticmethod
    def cloudformation_name_type() -> str:
        """The template property that names the resource (none: CloudFormation makes the name)."""
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        """The CloudFormation type this model plays."""
        return "AWS::SecretsManager::Secret"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        """Whether ``!GetAtt`` can read ``attr`` of this resource."""
        return attr == "Id"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str, **kwargs: Any) -> Secret:
        """Create the resource from its template properties in moto's backend."""
        from moto.secretsmanager.models import secretsmanager_backends

        props = cloudformation_json["Properties"]
        backend = secretsmanager_backends[account_id][region_name]
        secret = props.get("SecretString")
        if secret is None:
            generate = props.get("GenerateSecretString", {})
            options = {arg: _flag(generate.get(key, default)) for key, (arg, default) in _PASSWORD_OPTIONS.items()}
            options["password_length"] = int(options["password_length"])
            secret = json.loads(backend.get_random_password(**options))["RandomPassword"]
        created = json.loads(backend.create_secret(
            name=props.get("Name", resource_name), secret_string=secret, secret_binary=None,
            description=props.get("Description"), tags=props.get("Tags"), kms_key_id=props.get("KmsKeyId"),
            client_request_token=None, replica_regions=[], force_overwrite=False))
        return cls(created["ARN"], created["Name"])

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Secret,
                                        new_resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str) -> Secret:
        """Apply changed template properties to the resource; return it."""
        return original_resource  # CloudFormation keeps a generated value on update, too

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str) -> None:
        """Delete the resource from moto's backend."""
        from moto.secretsmanager.models import secretsmanager_backends

        secretsmanager_backends[account_id][region_name].delete_secret(
            cloudformation_json["Properties"].get("Name", resource_name), None, True)

    def is_created(self) -> bool:
        """Whether the resource exists (it does as soon as it is made)."""
        return True

    @property
    def physical_resource_id(self) -> str:
        """The resource's ``Ref``: its ARN."""
        return self.arn

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        """The value of ``!GetAtt`` ``attribute_name`` of this resource."""
        if attribute_name == "Id":
            return self.arn
        raise NotImplementedError(attribute_name)


MODELS: tuple[type[Any], ...] = (FunctionUrl, Secret)


def _apply(stack: ExitStack) -> None:
    from moto.cloudformation import parsing

    moto_models = parsing.get_model_list

    def get_model_list() -> list[type[Any]]:
        return [*moto_models(), *MODELS]

    replace(stack, parsing, "get_model_list", get_model_list)
    # moto caches the maps it builds from the list: rebuild them now, and again once uninstalled
    stack.callback(_forget_model_maps, parsing)
    _forget_model_maps(parsing)


def _forget_model_maps(parsing: Any) -> None:
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()


# Applied when moto first imports CloudFormation's code, which imports most of moto (2 s of CPU): a local
# AWS that is never asked for a stack does not pay for it (``patching``).
PATCH = Patch("cfn_models", "moto", ">=5.2,<5.3", _apply, on_import="moto.cloudformation.parsing")
install = PATCH.install
uninstall = PATCH.uninstall
