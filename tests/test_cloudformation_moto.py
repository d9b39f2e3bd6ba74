"""The php-nginx CloudFormation stack created for real in moto's server.

moto's CloudFormation creates the buckets, tables, queues, roles, security groups, launch templates,
auto scaling groups, load balancer, DNS record and the webhook's function; what it does not apply (the
buckets' public access block and versioning, the user data, IAM) is read from the template in
``test_cloudformation.py``.
"""

from __future__ import annotations

import json

import pytest
from cfnkit import TEMPLATE

from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.local import stack_aws
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.resources import resolve
from skynet_tasks.stacks.deploy import deploy_stack
from skynet_tasks.stacks.wheels import build_wheel

pytestmark = pytest.mark.timeout(180)


def test_the_stack_creates_skynets_resources_in_moto(tmp_path):
    server = MotoServer.start(log_file=tmp_path / "moto.log")
    try:
        aws = aws_for(server.environment())
        ec2 = aws.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"us-east-1{z}")
                   ["Subnet"]["SubnetId"] for n, z in ((1, "a"), (2, "b"), (3, "a"), (4, "b"))]
        zone = aws.client("route53").create_hosted_zone(Name="example.com", CallerReference="t")["HostedZone"]["Id"]
        image = ec2.describe_images()["Images"][0]["ImageId"]
        certificate = aws.client("acm").request_certificate(DomainName="app.example.com")["CertificateArn"]
        parameters = {"Env": "prod", "RepoUrl": "git@github.com:example/app.git", "DomainName": "app.example.com",
                      "CertificateArn": certificate,
                      "HostedZoneId": zone.split("/")[-1], "VpcId": vpc, "PublicSubnets": ",".join(subnets[:2]),
                      "PrivateSubnets": ",".join(subnets[2:]), "ImageId": image,
                      "SkynetWheelKey": f"agent/wheels/{'0' * 64}/skynet-0.1.0-py3-none-any.whl",
                      "SkynetWheelSha256": "0" * 64}
        cfn = aws.client("cloudformation")
        cfn.create_stack(StackName="php-nginx", TemplateBody=TEMPLATE.read_text(),
                         Capabilities=["CAPABILITY_NAMED_IAM"],
                         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
        stack = cfn.describe_stacks(StackName="php-nginx")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")

        account = aws.client("sts").get_caller_identity()["Account"]
        buckets = {b["Name"] for b in aws.s3.list_buckets()["Buckets"]}
        assert {f"skynet-prod-config-{account}", f"skynet-prod-repo-{account}"} <= buckets
        # ... and they are the names every Skynet command finds for the env, without being told them
        resolved = resolve(aws, "prod")
        assert {resolved.config_bucket, resolved.repo_bucket} <= buckets
        # moto's CloudFormation applies neither PublicAccessBlockConfiguration nor versioning to the buckets
        # it creates: test_buckets_block_public_access_and_are_encrypted_and_versioned reads them instead.

        for table, keys in ((names.endpoints_table("prod"), ["env", "layer"]),
                            (names.state_table("prod"), ["pk", "sk"]), (names.config_table("prod"), ["scope", "path"])):
            schema = aws.dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
            assert [k["AttributeName"] for k in schema] == keys

        for group in ("prod-api", "prod-rp"):
            maint = aws.sqs.get_queue_url(QueueName=names.maintenance_queue("prod", group))["QueueUrl"]
            attributes = aws.sqs.get_queue_attributes(QueueUrl=maint, AttributeNames=["All"])["Attributes"]
            assert attributes["FifoQueue"] == "true" and attributes["VisibilityTimeout"] == "20"
            redrive = json.loads(attributes["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"].endswith(names.dead_letter_queue(names.maintenance_queue("prod",
                                                                                                           group)))
        # Build requests travel on the maintenance queue: no build queue for anyone to poll.
        assert not [url for url in aws.sqs.list_queues(QueueNamePrefix="skynet-prod-").get("QueueUrls", [])
                    if "build" in url]

        roles = {r["RoleName"] for r in aws.client("iam").list_roles()["Roles"]}
        assert {"skynet-prod-rp", "skynet-prod-api"} <= roles
        groups = {g["AutoScalingGroupName"]: g for g in
                  aws.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]}
        assert {"skynet-prod-rp", "skynet-prod-api"} <= set(groups)
        tags = {t["Key"]: t["Value"] for t in groups["skynet-prod-api"]["Tags"]}
        assert tags["maintenance-group"] == "prod-api" and tags["skynet-layer"] == "api"

        # HTTPS on the load balancer; plain HTTP only redirects to it.
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        assert outputs["Url"] == "https://app.example.com/"
        elb = aws.client("elbv2")
        balancer = elb.describe_load_balancers(Names=["skynet-prod-rp"])["LoadBalancers"][0]["LoadBalancerArn"]
        listeners = {ln["Port"]: ln for ln in elb.describe_listeners(LoadBalancerArn=balancer)["Listeners"]}
        assert set(listeners) == {80, 443}
        https = listeners[443]
        assert https["Protocol"] == "HTTPS" and https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
        assert [c["CertificateArn"] for c in https["Certificates"]] == [certificate]
        assert [a["Type"] for a in https["DefaultActions"]] == ["forward"]
        [redirect] = listeners[80]["DefaultActions"]
        assert redirect["Type"] == "redirect"
        assert redirect["RedirectConfig"]["Protocol"] == "HTTPS" and redirect["RedirectConfig"]["Port"] == "443"
        assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"
        # No GitHubRepository: no webhook receiver, no secret.
        assert "WebhookUrl" not in outputs and "WebhookSecretArn" not in outputs
        assert aws.client("secretsmanager").list_secrets()["SecretList"] == []
    finally:
        server.stop()


def test_skynet_stack_deploy_creates_the_webhook_function_its_url_and_secret_in_moto(tmp_path):
    server = MotoServer.start(log_file=tmp_path / "moto.log")
    try:
        aws = aws_for(server.environment())
        network = stack_aws.create_network(aws, "10.7", "example.com")
        cfn = aws.client("cloudformation")
        result = deploy_stack(cfn, aws.s3, TEMPLATE, "skynet-prod", {
            "Env": "prod", "RepoUrl": "git@github.com:example/app.git", "Branch": "release",
            "GitHubRepository": "example/app", "DomainName": "app.example.com",
            "CertificateArn": network.certificate_arn, "HostedZoneId": network.hosted_zone_id,
            "VpcId": network.vpc_id, "PublicSubnets": ",".join(network.public_subnets),
            "PrivateSubnets": ",".join(network.private_subnets), "ImageId": network.image_id,
            "RpMinSize": "0", "RpDesiredSize": "0", "ApiMinSize": "0", "ApiDesiredSize": "0"},
            build_wheel(tmp_path), {"Delay": 1, "MaxAttempts": 60})

        stack = cfn.describe_stacks(StackName="skynet-prod")["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        code_key = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["WebhookCodeKey"]
        function = aws.client("lambda").get_function_configuration(FunctionName="skynet-prod-webhook")
        url = aws.client("lambda").get_function_url_config(FunctionName="skynet-prod-webhook")
        secret = aws.client("secretsmanager").get_secret_value(SecretId=outputs["WebhookSecretArn"])

        assert result.action == "created"
        assert code_key.startswith("agent/lambda/") and code_key.endswith("/skynet-webhook.zip")
        aws.s3.head_object(Bucket=result.bucket, Key=code_key)  # the code the function was created from
        assert function["Handler"] == "skynet_tasks.webhook.lambda_handler.handler"
        assert function["Role"].endswith(":role/skynet-prod-webhook") and function["Timeout"] == 10
        assert function["Environment"]["Variables"] == {
            "SKYNET_ENV": "prod", "SKYNET_WEBHOOK_SECRET_ARN": outputs["WebhookSecretArn"],
            "SKYNET_WEBHOOK_ROUTES": json.dumps({"routes": [
                {"repo": "example/app", "branch": "release", "env": "prod", "layer": "api"}]}),
            "GIT_PYTHON_REFRESH": "quiet"}
        assert url["AuthType"] == "NONE" and outputs["WebhookUrl"] == url["FunctionUrl"].rstrip("/") + "/"
        assert len(secret["SecretString"]) == 40 and secret["SecretString"].isalnum()
    finally:
        server.stop()
