"""The AWS side of the stack-built local cluster: IAM enforced, the stack deployed, its instances read back.

moto's server runs with ``INITIAL_NO_AUTH_ACTION_COUNT``: its first three requests create
the account's operator (an IAM user with an inline administrator policy, the local stand-in
for whoever deploys the stack on AWS) and from then on every request is authenticated and
checked against the caller's policies. The operator then creates the user that plays the EC2
service (it may only assume roles; only roles that trust ``ec2.amazonaws.com`` accept it) and
what a real account has before the stack: a VPC with two public and two private subnets, a
hosted zone and an image. Then it deploys ``cloudformation/php-nginx.yaml`` as a user would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.local.moto_main import SERVICE_USER_PREFIX

TEMPLATE = Path(__file__).resolve().parents[2] / "cloudformation" / "php-nginx.yaml"
OPERATOR = "skynet-operator"
EC2_SERVICE = f"{SERVICE_USER_PREFIX}ec2"
# The requests moto serves before it enforces IAM: exactly those that create the operator.
UNAUTHENTICATED_REQUESTS = 3
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ASSUME_ONLY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Resource": "*"}]}


def user_with_key(aws: Aws, name: str, policy: dict[str, Any]) -> dict[str, str]:
    """Create an IAM user with an inline ``policy``; return its access key as environment variables."""
    iam = aws.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def create_operator(unauthenticated: dict[str, str]) -> dict[str, str]:
    """The operator's environment (endpoint, region, its own keys), made with moto's free requests."""
    return {**unauthenticated, **user_with_key(aws_for(unauthenticated), OPERATOR, ADMIN)}


@dataclass(frozen=True)
class Network:
    """What a real account has before the stack: a VPC, subnets, a hosted zone, an image, a certificate."""

    vpc_id: str
    public_subnets: list[str]
    private_subnets: list[str]
    hosted_zone_id: str
    image_id: str
    certificate_arn: str

    def parameters(self) -> dict[str, str]:
        """The stack parameters that place the stack in this network."""
        return {"VpcId": self.vpc_id, "PublicSubnets": ",".join(self.public_subnets),
                "PrivateSubnets": ",".join(self.private_subnets), "HostedZoneId": self.hosted_zone_id,
                "ImageId": self.image_id, "CertificateArn": self.certificate_arn}


def create_network(aws: Aws, cidr_prefix: str, domain: str = "skynet.test") -> Network:
    """A VPC ``<prefix>.0.0/16`` with public subnets .1/.2 and private subnets .3/.4, a zone, an image and
    an ACM certificate for ``*.<domain>`` (the load balancer's HTTPS listener names one)."""
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=f"{cidr_prefix}.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{cidr_prefix}.{n}.0/24", AvailabilityZone=f"us-east-1{zone}")
               ["Subnet"]["SubnetId"] for n, zone in ((1, "a"), (2, "b"), (3, "a"), (4, "b"))]
    zone_id = aws.client("route53").create_hosted_zone(Name=domain, CallerReference=vpc)["HostedZone"]["Id"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    certificate = aws.client("acm").request_certificate(DomainName=f"*.{domain}")["CertificateArn"]
    return Network(vpc, subnets[:2], subnets[2:], zone_id.rsplit("/", 1)[-1], image, certificate)


def deploy_stack(aws: Aws, name: str, parameters: dict[str, str]) -> dict[str, str]:
    """Create the php-nginx stack with ``parameters``; return its outputs. Raise if it is not created."""
    cfn = aws.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@dataclass(frozen=True)
class Ec2Instance:
    """One instance the stack's auto scaling groups launched, as EC2 would describe it to its host."""

    instance_id: str
    address: str
    availability_zone: str
    tags: dict[str, str]
    user_data: str
    role_arn: str
    security_groups: tuple[str, ...] = ()

    @property
    def layer(self) -> str:
        """The instance's layer, from its ``skynet-layer`` tag."""
        return self.tags["skynet-layer"]


def stack_instances(aws: Aws, groups: list[str]) -> list[Ec2Instance]:
    """The running instances of the named auto scaling groups, with their user data and role."""
    import base64

    ec2, iam = aws.client("ec2"), aws.client("iam")
    found = []
    reservations = ec2.describe_instances(Filters=[
        {"Name": "tag:aws:autoscaling:groupName", "Values": groups},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    for instance in (i for r in reservations for i in r["Instances"]):
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
        template = ec2.describe_launch_template_versions(LaunchTemplateId=tags["aws:ec2launchtemplate:id"],
                                                         Versions=[tags["aws:ec2launchtemplate:version"]])
        data = template["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        profile_arn = data["IamInstanceProfile"]["Arn"]
        profile = iam.get_instance_profile(InstanceProfileName=profile_arn.rsplit("/", 1)[-1])["InstanceProfile"]
        found.append(Ec2Instance(
            instance_id=instance["InstanceId"], address=instance["PrivateIpAddress"],
            availability_zone=instance["Placement"]["AvailabilityZone"], tags=tags,
            user_data=base64.b64decode(user_data["UserData"]["Value"]).decode(), role_arn=profile["Roles"][0]["Arn"],
            security_groups=tuple(data.get("SecurityGroupIds", []))))
    return sorted(found, key=lambda i: (i.layer != "rp", i.address))
