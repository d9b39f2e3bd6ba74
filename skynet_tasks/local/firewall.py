"""The stack's security groups as packet-filter rules inside each instance's namespace.

On AWS a security group admits inbound traffic only as its rules say (a port range from
another security group, or from an address range) and lets replies back in (it is stateful).
Here each instance's namespace gets an nftables input chain built from the ingress rules
of its launch template's security groups, as moto describes them: a rule that names a
source group admits the addresses of the instances in that group; the load balancer's group
is the address its stand-in connects from (the VPC's gateway, where it runs). Everything else
inbound is dropped, loopback and replies aside. Rules are rebuilt whenever an instance joins,
so a new RP instance reaches the API layer as soon as it exists.

Trust: the rules come from moto, as the operator deployed the template.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from skynet_tasks.aws import Aws


class FirewallError(RuntimeError):
    """nft refused the rules (or is not installed)."""


@dataclass(frozen=True)
class Ingress:
    """One ingress rule: TCP ports ``low``-``high`` from these source groups or address ranges."""

    low: int
    high: int
    source_groups: tuple[str, ...]
    cidrs: tuple[str, ...]


def ingress_rules(ec2: Any, group_ids: Iterable[str]) -> list[Ingress]:
    """The TCP ingress rules of ``group_ids`` as EC2 describes them."""
    ids = list(group_ids)
    if not ids:
        return []
    rules = []
    for group in ec2.describe_security_groups(GroupIds=ids)["SecurityGroups"]:
        for permission in group.get("IpPermissions", []):
            if permission.get("IpProtocol") not in ("tcp", "-1"):
                continue
            rules.append(Ingress(int(permission.get("FromPort", 0)), int(permission.get("ToPort", 65535)),
                                 tuple(p["GroupId"] for p in permission.get("UserIdGroupPairs", [])),
                                 tuple(r["CidrIp"] for r in permission.get("IpRanges", []))))
    return rules


def ruleset(rules: Iterable[Ingress], members: Mapping[str, Iterable[str]]) -> str:
    """The nft script for one instance: ``members`` maps a security group to the addresses in it."""
    lines = ["table inet skynet-sg {", "  chain input {", "    type filter hook input priority 0; policy drop;",
             '    iif "lo" accept', "    ct state established,related accept"]
    for rule in rules:
        sources = sorted({a for group in rule.source_groups for a in members.get(group, ())} | set(rule.cidrs))
        if sources:
            lines.append(f"    tcp dport {rule.low}-{rule.high} ip saddr {{ {', '.join(sources)} }} accept")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Host:
    """An instance as its security groups see it."""

    namespace: str
    address: str
    security_groups: tuple[str, ...]


def apply_security_groups(aws: Aws, stack: str, gateway: str, hosts: Iterable[Host]) -> None:
    """Every host's inbound rules, from its security groups and the addresses of the hosts in each group.

    The load balancer's group is the ``gateway``: its stand-in runs there.
    """
    ec2, cfn = aws.client("ec2"), aws.client("cloudformation")
    balancer = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="LoadBalancerSecurityGroup")
    members: dict[str, list[str]] = {balancer["StackResourceDetail"]["PhysicalResourceId"]: [gateway]}
    hosts = list(hosts)
    for host in hosts:
        for group in host.security_groups:
            members.setdefault(group, []).append(host.address)
    for host in hosts:
        apply(host.namespace, ruleset(ingress_rules(ec2, host.security_groups), members))


def apply(namespace: str, script: str) -> None:
    """Replace the namespace's security-group table with ``script`` in one nft transaction."""
    replace = "table inet skynet-sg\ndelete table inet skynet-sg\n" + script  # the table may not exist yet
    result = subprocess.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=replace, text=True,
                            capture_output=True, check=False, timeout=30)
    if result.returncode != 0:
        raise FirewallError(f"nft in {namespace}: {result.stderr.strip()}")
