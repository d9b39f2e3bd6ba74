"""The php-nginx CloudFormation template, read: lint-clean, least privilege, locked-down buckets and ingress,
and ``skynet stack render`` / ``validate``.

moto's CloudFormation creates the stack's resources (``test_cloudformation_moto.py``); it does not apply
the buckets' public access block and versioning, boot instances from the user data or enforce IAM, so
those are checked here by reading the template.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnkit import ROOT, TEMPLATE

from skynet_tasks import names
from skynet_tasks.stacks.cfn import load_template

pytestmark = pytest.mark.timeout(180)


def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def test_cfn_lint_finds_nothing():
    result = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)], capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def statements() -> list[dict[str, Any]]:
    found = []
    for resource in template()["Resources"].values():
        props = resource.get("Properties", {})
        documents = [props.get("PolicyDocument")] + [p["PolicyDocument"] for p in props.get("Policies", [])]
        for document in filter(None, documents):
            found += document["Statement"]
    return found


def test_iam_policies_grant_no_wildcard_action_and_only_this_envs_resources():
    allowed = statements()
    assert allowed, "the instance policy is in the template"
    for statement in allowed:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] == "Deny":
            continue  # a deny may be as wide as it likes (the buckets' TLS-only policies deny s3:*)
        assert all("*" not in action for action in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            if resource == "*":
                # Only for actions IAM grants on no narrower resource.
                assert actions == ["sqs:ListQueues"], statement
                continue
            text = json.dumps(resource)
            # Every ARN names this env's resources (skynet-${Env}-…) or a resource of this stack (its
            # attribute, its Ref, or its name: the SSM parameter's ${AgentWheelParameter}).
            own = any(f"${{{name}}}" in text for name in template()["Resources"]) or (
                isinstance(resource, dict) and resource.get("Ref") in template()["Resources"])
            assert "skynet-${Env}-" in text or "Fn::GetAtt" in text or "Bucket.Arn" in text or own, statement


def policy_of(resource: str) -> list[dict[str, Any]]:
    return template()["Resources"][resource]["Properties"]["PolicyDocument"]["Statement"]


def granted(statements_: list[dict[str, Any]], action: str) -> list[str]:
    """The resources (as JSON text) that ``statements_`` allow ``action`` on."""
    found = []
    for statement in statements_:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] == "Allow" and action in actions:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            found += [json.dumps(r) for r in resources]
    return found


def test_each_layer_has_its_own_role_and_policy_and_both_share_only_the_instance_policy():
    resources = template()["Resources"]
    assert resources["ApiPolicy"]["Properties"]["Roles"] == [{"Ref": "ApiRole"}]
    assert resources["RpPolicy"]["Properties"]["Roles"] == [{"Ref": "RpRole"}]
    assert resources["InstancePolicy"]["Properties"]["Roles"] == [{"Ref": "RpRole"}, {"Ref": "ApiRole"}]
    attached = [name for name, r in resources.items() if r["Type"] == "AWS::IAM::ManagedPolicy"
                and {"Ref": "RpRole"} in r["Properties"].get("Roles", [])]
    assert sorted(attached) == ["InstancePolicy", "RpPolicy"]


def test_no_instance_may_set_queue_attributes_or_delete_a_queue_and_creates_only_instance_queues():
    for policy in ("InstancePolicy", "ApiPolicy", "RpPolicy"):
        for action in ("sqs:SetQueueAttributes", "sqs:DeleteQueue", "sqs:AddPermission", "sqs:*"):
            assert granted(policy_of(policy), action) == [], (policy, action)
    assert granted(policy_of("InstancePolicy"), "sqs:CreateQueue") == [
        json.dumps({"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:skynet-${Env}-inst-*"})]


def test_each_layer_reads_only_its_own_config_and_only_the_api_layer_writes_releases():
    def config_reads(policy: str) -> set[str]:
        return {r for r in granted(policy_of(policy), "s3:GetObject") if "ConfigBucket" in r}

    assert config_reads("ApiPolicy") == {json.dumps({"Fn::Sub": "${ConfigBucket.Arn}/" + p})
                                         for p in ("Global/*", "Environments/${Env}/*", "Layers/api/*")}
    assert config_reads("RpPolicy") == {json.dumps({"Fn::Sub": "${ConfigBucket.Arn}/" + p})
                                        for p in ("Global/*", "Environments/${Env}/*", "Layers/rp/*")}
    assert not config_reads("InstancePolicy")
    # Writes: the RP layer only its update logs; the API layer also what a builder writes; nobody the agent.
    rp_writes = granted(policy_of("InstancePolicy") + policy_of("RpPolicy"), "s3:PutObject")
    assert rp_writes == [json.dumps({"Fn::Sub": "${RepoBucket.Arn}/logs/updates/*"})]
    api_writes = set(granted(policy_of("ApiPolicy"), "s3:PutObject"))
    assert api_writes == {json.dumps({"Fn::Sub": "${RepoBucket.Arn}/" + p})
                          for p in ("*/artifact.tar.gz", "*/manifest.json", "logs/builds/*")}
    assert not [r for r in granted(policy_of("InstancePolicy") + policy_of("ApiPolicy") + policy_of("RpPolicy"),
                                   "s3:PutObject") if "ConfigBucket" in r]
    [never] = [s for s in policy_of("InstancePolicy") if s["Effect"] == "Deny"]
    assert "s3:PutObject" in never["Action"] and never["Resource"] == {"Fn::Sub": "${RepoBucket.Arn}/agent/*"}


@pytest.mark.parametrize("bucket", ["ConfigBucket", "RepoBucket"])
def test_both_buckets_refuse_requests_without_tls(bucket):
    # moto does not evaluate bucket policies: what AWS enforces is read from the template.
    policies = [r["Properties"] for r in template()["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"
                and r["Properties"]["Bucket"] == {"Ref": bucket}]
    [policy] = policies
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [{"Fn::GetAtt": f"{bucket}.Arn"}, {"Fn::Sub": f"${{{bucket}.Arn}}/*"}]


def iam_match(pattern: str, name: str) -> bool:
    """IAM's wildcard match: ``*`` is any run of characters, ``/`` and ``-`` included."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), name) is not None


def env_names(env: str) -> list[str]:
    """Every queue, table and group name Skynet gives env ``env`` (its groups are ``<env>-<layer>``)."""
    groups = [names.default_group(env, layer) for layer in ("api", "rp")] + ["eu-api"]
    queues = [names.maintenance_queue(env, g) for g in groups] + [names.instance_queue(env, "i-0abc")]
    return (queues + [names.dead_letter_queue(q) for q in queues]
            + [names.endpoints_table(env), names.state_table(env), names.config_table(env), f"skynet-{env}-api"])


@pytest.mark.parametrize(("env", "other"), [("prod", "prodeu"), ("prod", "prod1"), ("a", "ab"), ("p1", "p")])
def test_one_envs_wildcard_never_matches_another_envs_names(env, other):
    pattern = f"skynet-{env}-*"
    assert all(iam_match(pattern, name) for name in env_names(env))
    assert not [name for name in env_names(other) if iam_match(pattern, name)]


@pytest.mark.parametrize("env", ["prod-eu", "prod-", "Prod", "a" * 41, ""])
def test_an_env_name_that_could_extend_another_is_refused_by_the_template_and_the_code(env):
    pattern = template()["Parameters"]["Env"]["AllowedPattern"]
    assert re.fullmatch(pattern, env) is None
    with pytest.raises(ValueError, match="env"):
        names.prefix(env)


def test_the_webhook_role_may_only_enqueue_builds_read_its_secret_and_write_its_log():
    resources = template()["Resources"]
    policy = resources["WebhookPolicy"]["Properties"]
    granted = {}
    for statement in policy["PolicyDocument"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        keys = statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        granted[statement["Sid"]] = (json.dumps(statement["Resource"], sort_keys=True), sorted(actions), keys)

    assert policy["Roles"] == [{"Ref": "WebhookRole"}]
    table = json.dumps({"Fn::GetAtt": "StateTable.Arn"})
    assert granted == {
        "Secret": (json.dumps({"Ref": "WebhookSecret"}), ["secretsmanager:GetSecretValue"], None),
        "BuildRequests": (json.dumps({"Fn::GetAtt": "ApiMaintenanceQueue.Arn"}),
                          ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"], None),
        "QueueNames": (json.dumps("*"), ["sqs:ListQueues"], None),
        "Deliveries": (table, ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                       ["delivery#*", "group#*", "rollout#*"]),
        # Read only: a group's built releases, to answer "older than the running release".
        "Releases": (table, ["dynamodb:GetItem"], ["release#*"]),
        "Logs": (json.dumps({"Fn::GetAtt": "WebhookLogGroup.Arn"}), ["logs:CreateLogStream", "logs:PutLogEvents"],
                 None),
    }
    trust = resources["WebhookRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
    # The function URL is public (GitHub cannot sign AWS requests): the HMAC signature is the authentication.
    assert resources["WebhookUrl"]["Properties"]["AuthType"] == "NONE"
    assert "SKYNET_WEBHOOK_SECRET" not in resources["WebhookFunction"]["Properties"]["Environment"]["Variables"]


def test_no_ssh_and_no_public_ingress_to_the_api_layer():
    resources = template()["Resources"]
    for name, resource in resources.items():
        if resource["Type"] != "AWS::EC2::SecurityGroup":
            continue
        for rule in resource["Properties"].get("SecurityGroupIngress", []):
            ports = range(int(rule["FromPort"]), int(rule["ToPort"]) + 1) if not isinstance(rule["FromPort"], dict) \
                else []
            assert 22 not in ports, name
            if name != "LoadBalancerSecurityGroup":
                assert "CidrIp" not in rule, f"{name} is open to an address range"
    public = resources["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert sorted((r["FromPort"], r["ToPort"]) for r in public) == [(80, 80), (443, 443)]
    api_rules = resources["ApiSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [r["SourceSecurityGroupId"] for r in api_rules] == [{"Ref": "RpSecurityGroup"}]


def test_buckets_block_public_access_and_are_encrypted_and_versioned():
    resources = template()["Resources"]
    for name in ("ConfigBucket", "RepoBucket"):
        props = resources[name]["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values()), name
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name


def test_the_embedded_user_data_is_the_script_in_workers():
    embedded = template()["Mappings"]["UserData"]["Common"]["Script"]
    script = (ROOT / "workers" / "user-data.sh").read_text()
    assert script.endswith(embedded)


def test_stack_render_fills_parameters_and_refuses_unknown_ones():
    def skynet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "skynet_tasks.cli", "stack", *args], capture_output=True,
                              text=True, check=False, timeout=60)

    rendered = skynet("render", "--param", "Env=staging", "--param", "DomainName=app.example.com")
    unknown = skynet("render", "--param", "Nope=1")
    validated = skynet("validate")

    assert rendered.returncode == 0, rendered.stderr
    parameters = json.loads(rendered.stdout)["Parameters"]
    assert parameters["Env"]["Default"] == "staging" and parameters["DomainName"]["Default"] == "app.example.com"
    assert unknown.returncode != 0 and "no parameter Nope" in unknown.stderr
    assert validated.returncode == 0 and "pass cfn-lint" in validated.stdout
