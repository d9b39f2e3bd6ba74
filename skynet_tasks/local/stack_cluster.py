"""A local cluster built the way AWS builds it: from the stack, booted from user data, under IAM.

``skynet local up --stack`` and the stack tests use this module:

- moto's server is AWS, listening on the local VPC's gateway, with IAM enforced
  (``stack_aws``); the env is ``cloudformation/php-nginx.yaml`` deployed into it, and every
  name comes from the stack;
- the agent's wheel is built from this source tree and uploaded content-addressed, its
  sha256 passed to the stack, as ``skynet stack deploy`` does on AWS;
- each instance the auto scaling groups launched gets its own network namespace at the
  private address moto gave it (``network``), an instance-metadata stand-in serving its
  identity, tags and role credentials (``imds``), and a private mount namespace in which
  ``/etc``, ``/opt`` and ``/srv`` are overlays whose writes land in the instance's folder, and
  ``/opt/skynet`` is an overlay of this machine's virtual environment (the "image", with the
  agent's runtime baked in). ``/tmp`` stays shared: the sample app's repository may live
  there. Then its launch template's user data runs, unchanged: it verifies and installs
  the wheel, and ``workers.boot`` starts the worker.

The instance's boot environment is what EC2 gives a user-data script plus one variable,
``AWS_ENDPOINT_URL`` (moto's address): no ``SKYNET_*`` variable and no credentials.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.local import stack_aws
from skynet_tasks.local.cluster import ClusterError, create_sample_repo
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.network import IMDS_ADDRESS, Vpc, require_namespaces
from skynet_tasks.registry import Registry

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parents[2]
BOOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class StackInstance:
    id: str
    layer: str
    address: str
    namespace: str
    disk: str


@dataclass
class StackClusterInfo:
    dir: str
    env: str
    stack: str
    aws_endpoint: str
    moto_pid: int
    app_repo: str
    operator: dict[str, str]
    outputs: dict[str, str]
    instances: list[StackInstance] = field(default_factory=list)


class StackCluster:
    """Start and stop the stack-built cluster in ``directory``."""

    def __init__(self, directory: Path, env: str = "local", cidr_prefix: str = "10.213", name: str = "skyvpc") -> None:
        self.dir = directory.resolve()
        self.env = names.check_name_part("env", env)
        self.cidr_prefix = cidr_prefix
        self.vpc = Vpc(name, f"{cidr_prefix}.0.0/16")
        self.moto: MotoServer | None = None
        self.info: StackClusterInfo | None = None

    def up(self, api: int = 1, rp: int = 0, ready_timeout: float = 180.0) -> StackClusterInfo:
        """Deploy the stack with ``api`` and ``rp`` instances, boot each from its user data, wait registered."""
        if sys.prefix == sys.base_prefix:
            raise ClusterError("the stack-built cluster overlays this virtual environment as each instance's "
                               "/opt/skynet: run it from one (make setup makes .venv)")
        require_namespaces()
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self.vpc.create()
        try:
            self.moto = MotoServer.start(host=self.vpc.gateway, log_file=self.dir / "logs" / "moto.log",
                                         extra_env={"INITIAL_NO_AUTH_ACTION_COUNT":
                                                    str(stack_aws.UNAUTHENTICATED_REQUESTS)})
            self.info = self._deploy(api, rp)
            for instance in stack_aws.stack_instances(self.operator_aws(), self.auto_scaling_groups()):
                self.boot(instance)
            self.wait_registered(ready_timeout)
            return self.info
        except BaseException:
            self.down()
            raise

    def operator_aws(self):  # noqa: ANN201 - an Aws, for the operator's own credentials
        if self.info is None:
            raise ClusterError("the stack-built cluster is not up")
        return aws_for(self.info.operator)

    def auto_scaling_groups(self) -> list[str]:
        return [f"skynet-{self.env}-rp", f"skynet-{self.env}-api"]

    def _deploy(self, api: int, rp: int) -> StackClusterInfo:
        assert self.moto is not None  # noqa: S101 - up() started it
        operator = stack_aws.create_operator(self.moto.environment())
        aws = aws_for(operator)
        service_key = stack_aws.user_with_key(aws, stack_aws.EC2_SERVICE, stack_aws.ASSUME_ONLY)
        (self.dir / "ec2-service.json").write_text(json.dumps(service_key))
        (self.dir / "ec2-service.json").chmod(0o600)
        repo = create_sample_repo(self.dir)
        wheel = stack_aws.build_wheel(SOURCE, self.dir / "wheel")
        sha256 = stack_aws.sha256_of(wheel)
        network = stack_aws.create_network(aws, self.cidr_prefix)
        stack = f"skynet-{self.env}"
        outputs = stack_aws.deploy_stack(aws, stack, {
            "Env": self.env, "RepoUrl": str(repo), "DomainName": f"app.{self.env}.skynet.test",
            "HostedZoneId": network.hosted_zone_id, "VpcId": network.vpc_id,
            "PublicSubnets": ",".join(network.public_subnets), "PrivateSubnets": ",".join(network.private_subnets),
            "ImageId": network.image_id, "CertificateArn": network.certificate_arn,
            "RpMinSize": str(rp), "RpDesiredSize": str(rp),
            "RpMaxSize": str(max(rp, 1) + 2), "ApiMinSize": str(api), "ApiDesiredSize": str(api),
            "ApiMaxSize": str(api + 2), "SkynetWheelKey": stack_aws.wheel_key(wheel, sha256),
            "SkynetWheelSha256": sha256})
        aws.s3.upload_file(str(wheel), outputs["RepoBucketName"], stack_aws.wheel_key(wheel, sha256))
        info = StackClusterInfo(dir=str(self.dir), env=self.env, stack=stack, aws_endpoint=self.moto.endpoint,
                                moto_pid=self.moto.process.pid, app_repo=str(repo), operator=operator, outputs=outputs)
        self.save(info)
        return info

    def save(self, info: StackClusterInfo) -> None:
        from dataclasses import asdict

        path = self.dir / "stack.json"
        path.write_text(json.dumps(asdict(info), indent=2) + "\n")
        path.chmod(0o600)  # it holds the operator's keys

    def scale_out(self, layer: str, count: int = 1) -> list[StackInstance]:
        """Raise ``layer``'s auto scaling group by ``count`` and boot what it launches, as EC2 would."""
        info = self.info
        assert info is not None  # noqa: S101
        autoscaling = self.operator_aws().client("autoscaling")
        group = f"skynet-{self.env}-{names.check_name_part('layer', layer)}"
        described = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
        autoscaling.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=described["DesiredCapacity"]
                                         + count)
        known = {i.id for i in info.instances}
        launched = [i for i in stack_aws.stack_instances(self.operator_aws(), [group]) if i.instance_id not in known]
        return [self.boot(instance) for instance in launched]

    # ---- one instance ----------------------------------------------------------
    def boot(self, instance: stack_aws.Ec2Instance, timeout: float = 180.0) -> StackInstance:
        """Give ``instance`` its namespaces and metadata, then run its user data; raise if it fails."""
        info = self.info
        assert info is not None  # noqa: S101
        disk = self.dir / "instances" / instance.instance_id
        for part in ("etc", "opt", "venv", "srv"):
            for layer in ("upper", "work"):
                (disk / f"{part}-{layer}").mkdir(parents=True, exist_ok=True)
        namespace = self.vpc.attach(instance.instance_id, instance.address)
        booted = StackInstance(instance.instance_id, instance.layer, instance.address, namespace, str(disk))
        info.instances.append(booted)
        self.save(info)
        self.start_imds(instance, disk, namespace)
        (disk / "user-data").write_text(instance.user_data)

        def overlay(lower: str, part: str, target: str) -> str:
            return (f"mount -t overlay overlay -o lowerdir={lower},upperdir={disk}/{part}-upper,"
                    f"workdir={disk}/{part}-work {target}")

        # The instance's own disk: what it writes to /etc, /opt and /srv lands in its folder, never on this host.
        mounts = "; ".join([overlay("/etc", "etc", "/etc"), overlay("/opt", "opt", "/opt"), "mkdir -p /opt/skynet",
                            overlay(sys.prefix, "venv", "/opt/skynet"), overlay("/srv", "srv", "/srv")])
        environment = {"PATH": BOOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "AWS_ENDPOINT_URL": info.aws_endpoint}
        with open(disk / "cloud-init-output.log", "ab") as out:
            result = subprocess.run(
                ["ip", "netns", "exec", namespace, "unshare", "--mount", "--propagation", "private", "bash", "-c",
                 f"set -e; {mounts}; exec bash {disk}/user-data"],
                env=environment, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout,
                check=False)
        if result.returncode != 0:
            tail = (disk / "cloud-init-output.log").read_text()[-2000:]
            raise ClusterError(f"instance {instance.instance_id}'s user data failed ({result.returncode}):\n{tail}")
        return booted

    def start_imds(self, instance: stack_aws.Ec2Instance, disk: Path, namespace: str) -> None:
        assert self.info is not None  # noqa: S101
        service_key = json.loads((self.dir / "ec2-service.json").read_text())
        config = disk / "imds.json"
        config.write_text(json.dumps({
            "listen": [IMDS_ADDRESS, 80], "instance_id": instance.instance_id, "local_ipv4": instance.address,
            "region": self.info.operator["AWS_DEFAULT_REGION"], "availability_zone": instance.availability_zone,
            "tags": instance.tags, "user_data": instance.user_data, "role_arn": instance.role_arn,
            "endpoint_url": self.info.aws_endpoint, "service_key_id": service_key["AWS_ACCESS_KEY_ID"],
            "service_secret": service_key["AWS_SECRET_ACCESS_KEY"]}))
        config.chmod(0o600)
        with open(disk / "imds.log", "ab") as out:
            subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-m", "skynet_tasks.local.imds",
                              str(config)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env={"PATH": BOOT_PATH, "PYTHONPATH": os.environ.get(
                                 "PYTHONPATH", "")})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = subprocess.run(["ip", "netns", "exec", namespace, "bash", "-c",
                                    f"exec 3<>/dev/tcp/{IMDS_ADDRESS}/80"], capture_output=True, check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise ClusterError(f"the metadata service of {instance.instance_id} did not start; see {disk}/imds.log")

    def wait_registered(self, timeout: float) -> None:
        """Wait until every booted instance is in the endpoints table, at its private address."""
        info = self.info
        assert info is not None  # noqa: S101
        registry = Registry(self.operator_aws().dynamodb, names.endpoints_table(self.env))
        wanted = {i.id: i.address for i in info.instances}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            present = {e.instance_id: e.address for e in registry.live(self.env, None, 600)}
            if all(present.get(i) == address for i, address in wanted.items()):
                return
            time.sleep(0.5)
        raise ClusterError(f"instances {sorted(wanted)} did not register within {timeout:.0f}s; see "
                           f"{self.dir}/instances/*/srv-upper/skynet/logs/worker.log")

    # ---- down ------------------------------------------------------------------
    def down(self) -> None:
        """Stop every process of every instance namespace, delete the namespaces, the bridge and moto."""
        for namespace in self.vpc.namespaces():
            kill_namespace(namespace)
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        self.vpc.destroy()
        if self.moto is not None:
            self.moto.stop()
        elif (self.dir / "stack.json").exists():
            try:
                os.killpg(json.loads((self.dir / "stack.json").read_text())["moto_pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        (self.dir / "stack.json").unlink(missing_ok=True)


def kill_namespace(namespace: str, grace: float = 10.0) -> None:
    """SIGTERM every process in ``namespace`` (workers leave the registry), SIGKILL what remains."""
    def pids() -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
        return [int(p) for p in listed.stdout.split()]

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while pids() and time.monotonic() < deadline:
            time.sleep(0.1)
