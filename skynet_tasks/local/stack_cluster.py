"""A local cluster built the way AWS builds it: from the stack, booted from user data, under IAM.

``skynet local up --stack``, ``skynet demo`` and the stack tests use this module:

- moto's server is AWS, listening on the local VPC's gateway, with IAM enforced (``stack_aws``); the env is
  ``cloudformation/php-nginx.yaml`` deployed into it, and every name comes from the stack;
- the agent's wheel is built from this source tree and uploaded content-addressed, its sha256 pinned in the
  stack's parameters, as ``skynet stack deploy`` does on AWS;
- each instance the auto scaling groups launched boots as an EC2 host would (``ec2_host``):
  its own namespaces at its private address, its metadata, its user data unchanged;
- the webhook receiver and the dashboard run on this machine with the operator's credentials,
  and ``env.sh`` points a shell at the cluster as its operator.

The same ``ClusterInfo`` as the plain cluster's describes it (``cluster.json``), so ``skynet status``,
the demo and ``skynet local down`` work on either.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skynet_tasks import names
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.local import ec2_host, firewall, stack_aws
from skynet_tasks.local.cluster_info import ClusterError, ClusterInfo, InstanceInfo, RecordedCluster
from skynet_tasks.local.lb_process import start_load_balancer, write_targets
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.network import Vpc, require_namespaces
from skynet_tasks.local.sample_repo import create_sample_repo
from skynet_tasks.registry import Registry
from skynet_tasks.stacks.wheels import build_wheel, upload_wheel, wheel_ref

log = logging.getLogger(__name__)


@dataclass
class StackInstance:
    """One booted instance: its layer, private address, namespace, folder and security groups."""

    id: str
    layer: str
    address: str
    namespace: str
    disk: str
    security_groups: list[str] = field(default_factory=list)


@dataclass
class StackState:
    """What the stack-built cluster knows beyond ``ClusterInfo``: the stack, the operator, the hosts."""

    stack: str
    vpc: str
    cidr: str
    operator: dict[str, str]
    service_key: dict[str, str]
    outputs: dict[str, str]
    instances: list[StackInstance] = field(default_factory=list)


class StackCluster(RecordedCluster):
    """Start and stop the stack-built cluster in ``directory``."""

    WORKER_LOGS = "instances/*/srv-upper/skynet/logs/worker.log"  # an instance's /srv is an overlay's upper layer

    def __init__(self, directory: Path, env: str = "local", faults: str = "", wheel: Path | None = None,
                 metadata_delay: float = 0.0) -> None:
        super().__init__(directory)
        self.faults = faults  # the local AWS's fault modes (skynet_tasks.local.faults)
        self.metadata_delay = metadata_delay  # each instance's metadata answers its credentials this late (imds)
        self.wheel = wheel  # the agent wheel the instances boot; None: built from this checkout at ``up``
        self.env = names.check_env(env)
        self._vpc: Vpc | None = None
        self.state: StackState | None = None
        # Seconds each phase of ``up`` took (``stack``, ``up``) and each instance's boot (``boot:<id>``).
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()  # instances boot in parallel; their records and rules change one at a time

    # ---- up --------------------------------------------------------------------
    def up(self, api: int = 1, rp: int = 0, ready_timeout: float = 180.0, services: bool = False) -> ClusterInfo:
        """Deploy the stack with ``api`` and ``rp`` instances, boot each from its user data, wait registered.

        ``services`` also starts the webhook receiver and the dashboard (the demo and ``local up``).
        """
        if sys.prefix == sys.base_prefix:
            raise ClusterError("the stack-built cluster overlays this virtual environment as each instance's "
                               "/opt/skynet: run it from one (make setup makes .venv)")
        require_namespaces()
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self._vpc = Vpc.claim()
        started = time.monotonic()
        try:
            iam = {"INITIAL_NO_AUTH_ACTION_COUNT": str(stack_aws.UNAUTHENTICATED_REQUESTS)}
            self.moto = MotoServer.start(host=self.vpc.gateway, log_file=self.dir / "logs" / "moto.log",
                                         faults=self.faults, extra_env=iam)
            self._deploy(api, rp)
            if services:
                self.start_services()
            launched = stack_aws.stack_instances(self.operator_aws(), self.auto_scaling_groups())
            if services:
                self.start_load_balancer()
            self.timings["stack"] = time.monotonic() - started  # moto, the account, the wheel, the stack
            with ThreadPoolExecutor(max_workers=max(len(launched), 1)) as pool:
                list(pool.map(self.boot, launched))
            self.wait_registered(ready_timeout)
            self.timings["up"] = time.monotonic() - started
            return self.require_info()
        except BaseException:
            self.down()
            raise

    def require_state(self) -> StackState:
        """The stack's record (``stack.json``); ClusterError if there is none."""
        if self.state is None:
            path = self.dir / "stack.json"
            if not path.exists():
                raise ClusterError(f"no stack-built cluster in {self.dir} (no stack.json)")
            data = json.loads(path.read_text())
            data["instances"] = [StackInstance(**i) for i in data["instances"]]
            self.state = StackState(**data)
        return self.state

    @property
    def vpc(self) -> Vpc:
        """The local VPC: claimed by ``up``, or read back from ``stack.json``."""
        if self._vpc is None:
            state = self.require_state()
            self._vpc = Vpc(state.vpc, state.cidr)
        return self._vpc

    def operator_aws(self) -> Aws:
        """The operator's AWS: this machine's user of the cluster, an administrator of its account."""
        return aws_for(self.require_state().operator)

    def aws(self) -> Aws:
        """What a caller of either kind of cluster uses: here, the operator's AWS."""
        return self.operator_aws()

    def auto_scaling_groups(self) -> list[str]:
        """The names of the stack's auto scaling groups."""
        return [f"skynet-{self.env}-rp", f"skynet-{self.env}-api"]

    def _deploy(self, api: int, rp: int) -> None:
        if self.moto is None:
            raise ClusterError("moto's server is not running")
        operator = {**stack_aws.create_operator(self.moto.environment()), "SKYNET_ENV": self.env}
        aws = aws_for(operator)
        service_key = stack_aws.user_with_key(aws, stack_aws.EC2_SERVICE, stack_aws.ASSUME_ONLY)
        repo = create_sample_repo(self.shared_repos())
        (self.dir / "wheel").mkdir(exist_ok=True)
        built = self.wheel or build_wheel(self.dir / "wheel")
        wheel = wheel_ref(built)
        network = stack_aws.create_network(aws, self.vpc.cidr.split(".0.0/")[0])
        stack = f"skynet-{self.env}"
        outputs = stack_aws.deploy_stack(aws, stack, {
            "Env": self.env, "RepoUrl": str(repo), "DomainName": f"app.{self.env}.skynet.test", **network.parameters(),
            "RpMinSize": str(rp), "RpDesiredSize": str(rp),
            "RpMaxSize": str(max(rp, 1) + 2), "ApiMinSize": str(api), "ApiDesiredSize": str(api),
            "ApiMaxSize": str(api + 2), **wheel.parameters()})
        upload_wheel(aws.s3, outputs["RepoBucketName"], built)
        self.state = StackState(stack=stack, vpc=self.vpc.name, cidr=self.vpc.cidr, operator=operator,
                                service_key=service_key, outputs=outputs)
        self.info = ClusterInfo(dir=str(self.dir), env=self.env, aws_endpoint=self.moto.endpoint,
                                moto_pid=self.moto.process.pid, app_repo=str(repo),
                                groups=[names.default_group(self.env, "api"), names.default_group(self.env, "rp")],
                                environment=operator)
        self.save()
        self.info.write_env_file()

    def shared_repos(self) -> Path:
        """Where the sample app's repository lives: a folder of the shared /tmp that the instances' users
        may read (the cluster's own folder may be private to this machine's user, as pytest's are).

        Made afresh: one of this VPC's name was left by a cluster killed rather than brought down, and held
        its last commits (a demo then rolled out a release made to fail)."""
        shared = Path(tempfile.gettempdir()) / f"skynet-{self.vpc.name}-repos"
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir()
        shared.chmod(0o755)
        return shared

    def start_services(self) -> None:
        """The webhook receiver and the dashboard, on this machine, acting with the operator's credentials."""
        from skynet_tasks.monitor.local import start_local_dashboard
        from skynet_tasks.webhook.local import start_local_receiver

        info = self.require_info()
        receiver = start_local_receiver(self.dir, info.environment, Path(info.app_repo), env=self.env)
        dashboard = start_local_dashboard(self.dir, info.environment, env=self.env)
        info.webhook_url, info.webhook_secret_file = receiver.url, receiver.secret_file
        info.dashboard_url, info.dashboard_token_file = dashboard.url, dashboard.token_file
        info.services.update(webhook=receiver.pid, dashboard=dashboard.pid)
        self.save()

    def start_load_balancer(self) -> None:
        """The load balancer stand-in, with the health check of the stack's RP target group."""
        info = self.require_info()
        elbv2 = self.operator_aws().client("elbv2")
        (target_group,) = elbv2.describe_target_groups(Names=[f"skynet-{self.env}-rp"])["TargetGroups"]
        balancer = start_load_balancer(self.dir, target_group, self.rp_targets())
        info.rp_url = balancer.url
        info.services["load-balancer"] = balancer.pid
        self.save()

    def rp_targets(self) -> list[str]:
        """The RP instances as load-balancer targets (``address:8000``)."""
        return [f"{i.address}:8000" for i in self.require_state().instances if i.layer == "rp"]

    def save(self) -> None:
        """Write both records, ``cluster.json`` and ``stack.json`` (private: it holds keys)."""
        self.require_info().save()
        path = self.dir / "stack.json"
        path.write_text(json.dumps(asdict(self.require_state()), indent=2) + "\n")
        path.chmod(0o600)  # it holds the operator's keys

    # ---- instances -------------------------------------------------------------
    def boot(self, instance: stack_aws.Ec2Instance) -> StackInstance:
        """Give ``instance`` its namespaces and metadata, then run its user data; raise if it fails."""
        info, state = self.require_info(), self.require_state()
        disk = self.dir / "instances" / instance.instance_id
        disk.mkdir(parents=True, exist_ok=True)
        namespace = self.vpc.attach(instance.instance_id, instance.address)
        booted = StackInstance(instance.instance_id, instance.layer, instance.address, namespace, str(disk),
                               list(instance.security_groups))
        with self._lock:
            state.instances.append(booted)
            info.instances.append(InstanceInfo(id=instance.instance_id, layer=instance.layer,
                                               group=instance.tags.get("maintenance-group", ""),
                                               root=str(disk / "srv-upper" / "skynet"), pid=0, app_port=8000))
            self.save()
            self.apply_security_groups()  # before it runs anything; and its peers now admit it
        started = time.monotonic()
        ec2_host.start_metadata(instance, disk, namespace, info.aws_endpoint, info.environment["AWS_DEFAULT_REGION"],
                                state.service_key, credentials_delay=self.metadata_delay)
        ec2_host.run_user_data(instance, disk, namespace, info.aws_endpoint)
        self.timings[f"boot:{instance.instance_id}"] = time.monotonic() - started
        if instance.layer == "rp" and "load-balancer" in info.services:
            with self._lock:
                write_targets(self.dir / "lb-targets", self.rp_targets())  # the group registers it in the target group
        return booted

    def apply_security_groups(self) -> None:
        """Every booted instance's inbound rules, from its security groups and the instances in each group."""
        state = self.require_state()
        hosts = [firewall.Host(i.namespace, i.address, tuple(i.security_groups)) for i in state.instances]
        firewall.apply_security_groups(self.operator_aws(), state.stack, self.vpc.gateway, hosts)

    def scale_out(self, layer: str, count: int = 1) -> list[StackInstance]:
        """Raise ``layer``'s auto scaling group by ``count`` and boot what it launches, as EC2 would."""
        autoscaling = self.operator_aws().client("autoscaling")
        group = f"skynet-{self.env}-{names.check_name_part('layer', layer)}"
        described = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
        autoscaling.set_desired_capacity(AutoScalingGroupName=group,
                                         DesiredCapacity=described["DesiredCapacity"] + count)
        known = {i.id for i in self.require_state().instances}
        launched = [i for i in stack_aws.stack_instances(self.operator_aws(), [group]) if i.instance_id not in known]
        return [self.boot(instance) for instance in launched]

    def wait_registered(self, timeout: float) -> None:
        """Wait until every booted instance is in the endpoints table, at its private address."""
        registry = Registry(self.operator_aws().dynamodb, names.endpoints_table(self.env))
        wanted = {i.id: i.address for i in self.require_state().instances}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            present = {e.instance_id: e.address for e in registry.live(self.env, None, 600)}
            if all(present.get(i) == address for i, address in wanted.items()):
                return
            time.sleep(0.5)
        raise ClusterError(f"instances {sorted(wanted)} did not register in {timeout:.0f}s; see {self.worker_logs()}")

    # ---- down ------------------------------------------------------------------
    def down(self) -> None:
        """Stop every process of every instance, the services and moto; delete the namespaces and the bridge."""
        try:
            vpc: Vpc | None = self.vpc
        except ClusterError:
            vpc = None  # never got as far as a VPC
        if vpc is not None:
            def stop(namespace: str) -> None:
                instance_id = namespace.removeprefix(f"{vpc.name}-")
                ec2_host.stop_namespace(namespace, self.dir / "instances" / instance_id)
                vpc.detach(instance_id)

            # All at once: each worker's warm shutdown waits out its long poll, and those waits overlap.
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(stop, vpc.namespaces()))
            vpc.destroy()
        self.stop_recorded()  # the services (receiver, dashboard, load balancer), then moto
        if vpc is not None:
            shutil.rmtree(Path(tempfile.gettempdir()) / f"skynet-{vpc.name}-repos", ignore_errors=True)
        (self.dir / "stack.json").unlink(missing_ok=True)
