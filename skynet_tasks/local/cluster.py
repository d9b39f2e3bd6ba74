"""A whole Skynet cluster on one machine: moto's server, the env's resources, a sample app, real workers.

``skynet local up`` and the test suite both use this module: there is no second harness.
Everything it starts is recorded in ``DIR/cluster.json`` (``cluster_info``) with its process
id, so ``skynet local down`` stops exactly that.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from skynet_tasks import names
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.local.cluster_info import ClusterError, ClusterInfo, InstanceInfo, RecordedCluster
from skynet_tasks.local.motoserver import MotoServer, free_port
from skynet_tasks.local.processes import stop_app, stop_process_group
from skynet_tasks.local.sample_repo import create_layer_branch, create_sample_repo
from skynet_tasks.proctable import process_alive
from skynet_tasks.registry import Registry
from skynet_tasks.resources import resolve
from skynet_tasks.settings import child_environment

log = logging.getLogger(__name__)

LOCAL_ENV = "local"


class LocalCluster(RecordedCluster):
    """Start and stop a local cluster in ``directory``."""

    def __init__(self, directory: Path, heartbeat_interval: float = 5.0, heartbeat_max_age: float = 30.0,
                 extra_env: dict[str, str] | None = None, faults: str = "", count_requests: bool = False) -> None:
        super().__init__(directory)
        self.faults = faults  # the local AWS's fault modes (skynet_tasks.local.faults)
        self.count_requests = count_requests  # the local AWS counts what it serves (the benchmarks)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_max_age = heartbeat_max_age
        self.extra_env = extra_env or {}
        self._aws_made = threading.local()  # (boto3 sessions are not to be shared between threads)

    # ---- up -----------------------------------------------------------------
    def up(self, api: int = 3, rp: int = 0, ready_timeout: float = 60.0,
           extra_layers: Mapping[str, int] | None = None) -> ClusterInfo:
        """Start the cluster: ``api`` app instances, ``rp`` proxies, and per extra layer (``{"web": 3}``)
        that many app instances in a group of their own, tracking the sample app's branch of that name."""
        for layer in extra_layers or {}:
            names.check_name_part("layer", layer)
            if layer in ("api", "rp"):
                raise ClusterError(f"{layer} is not an extra layer: use up({layer}=...)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        (self.dir / "logs").mkdir(exist_ok=True)
        self.moto = MotoServer.start(log_file=self.dir / "logs" / "moto.log", faults=self.faults,
                                     count_requests=self.count_requests)
        try:
            return self._up(api, rp, ready_timeout, extra_layers)
        except BaseException:
            self.down()
            raise

    def _up(self, api: int, rp: int, ready_timeout: float,
            extra_layers: Mapping[str, int] | None = None) -> ClusterInfo:
        if self.moto is None:
            raise ClusterError("moto's server is not running")
        environment = {
            **self.moto.environment(),
            "SKYNET_ENV": LOCAL_ENV,
            "SKYNET_HEARTBEAT_INTERVAL": str(self.heartbeat_interval),
            "SKYNET_HEARTBEAT_MAX_AGE": str(self.heartbeat_max_age),
            **self.extra_env,
        }
        layers = [("api", api), *(extra_layers or {}).items()] + ([("rp", rp)] if rp else [])
        groups = [names.default_group(LOCAL_ENV, layer) for layer, count in layers]
        aws = self.aws(environment)
        resources = resolve(aws, LOCAL_ENV)  # the stack's names: moto's account id is in the buckets'
        bootstrap_env(aws, resources, groups)
        # What the stack's user-data gives every instance; `skynet agent push` also still reads them.
        environment.update(SKYNET_CONFIG_BUCKET=resources.config_bucket, SKYNET_REPO_BUCKET=resources.repo_bucket)
        app_repo = create_sample_repo(self.dir)
        branches = {layer: create_layer_branch(app_repo, layer) for layer in extra_layers or {}}
        self.info = ClusterInfo(dir=str(self.dir), env=LOCAL_ENV, aws_endpoint=self.moto.endpoint,
                                moto_pid=self.moto.process.pid, app_repo=str(app_repo), groups=groups,
                                environment=environment, branches=branches)
        self.info.save()
        self.start_webhook()
        self.start_dashboard()
        for layer, count in layers:
            for number in range(1, count + 1):
                self.start_instance(f"{layer}-{number}", layer)
        proxies = [i for i in self.info.instances if i.layer == "rp"]
        if proxies:
            self.info.rp_url = f"http://127.0.0.1:{proxies[0].app_port}"
            self.info.save()
        self.info.write_env_file()
        self.wait_registered([i.id for i in self.info.instances], ready_timeout)
        log.info("local cluster up in %s: %d instances", self.dir, len(self.info.instances))
        return self.info

    def start_webhook(self) -> None:
        """Start the webhook receiver, routing pushes of the sample repository to the groups."""
        from skynet_tasks.webhook.local import start_local_receiver

        info = self.require_info()
        receiver = start_local_receiver(self.dir, info.environment, Path(info.app_repo), env=LOCAL_ENV,
                                        branches_by_layer=info.branches)
        info.webhook_url, info.webhook_secret_file = receiver.url, receiver.secret_file
        info.services["webhook"] = receiver.pid
        info.save()

    def start_dashboard(self) -> None:
        """Start the dashboard."""
        from skynet_tasks.monitor.local import start_local_dashboard

        info = self.require_info()
        dashboard = start_local_dashboard(self.dir, info.environment, env=LOCAL_ENV)
        info.dashboard_url, info.dashboard_token_file = dashboard.url, dashboard.token_file
        info.services["dashboard"] = dashboard.pid
        info.save()

    def aws(self, environment: dict[str, str] | None = None) -> Aws:
        """AWS clients of the cluster's moto server (or of ``environment``), made once per thread: a test
        waiting on the cluster asks several times a second, and two new clients cost 70 ms of CPU."""
        chosen = environment or (self.info.environment if self.info else {})
        made: dict[tuple[tuple[str, str], ...], Aws] = self._aws_made.__dict__.setdefault("by_environment", {})
        key = tuple(sorted(chosen.items()))
        if key not in made:
            made[key] = aws_for(chosen)
        return made[key]

    def instance_environment(self, instance_id: str, layer: str, app_port: int) -> dict[str, str]:
        """The ``SKYNET_*`` variables of one instance's worker."""
        info = self.require_info()
        root = self.dir / "instances" / instance_id
        return {
            **info.environment,
            "SKYNET_LAYER": layer,
            "SKYNET_INSTANCE_ID": instance_id,
            "SKYNET_ROOT": str(root),
            "SKYNET_CONFIG_DIR": str(root / "config"),
            "SKYNET_APP_PORT": str(app_port),
            "SKYNET_ADDRESS": "127.0.0.1",
            "SKYNET_REPO": info.app_repo,
            "SKYNET_BRANCH": info.branches.get(layer, "main"),
            **({"SKYNET_RP_POLL": "2", "SKYNET_WEBHOOK_UPSTREAM": urlsplit(info.webhook_url).netloc}
               if layer == "rp" and info.webhook_url else {}),
        }

    def start_instance(self, instance_id: str, layer: str, app_port: int | None = None) -> InstanceInfo:
        """Start (or restart) one instance's worker as a real ``skynet worker`` process."""
        info = self.require_info()
        existing = next((i for i in info.instances if i.id == instance_id), None)
        port = app_port or (existing.app_port if existing else free_port())
        env = self.instance_environment(instance_id, layer, port)
        root = Path(env["SKYNET_ROOT"])
        (root / "logs").mkdir(parents=True, exist_ok=True)
        with open(root / "logs" / "worker.log", "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "skynet_tasks.cli", "worker"], env=child_environment(**env), stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=root)
        started = InstanceInfo(id=instance_id, layer=layer, group=names.default_group(LOCAL_ENV, layer),
                               root=str(root), pid=process.pid, app_port=port)
        info.instances = [i for i in info.instances if i.id != instance_id] + [started]
        info.save()
        return started

    def stop_instance(self, instance_id: str, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
        """Stop an instance's worker (SIGKILL with ``sig=signal.SIGKILL``); its app keeps running."""
        found = next(i for i in self.require_info().instances if i.id == instance_id)
        stop_process_group(found.pid, grace=grace, sig=sig)

    def wait_registered(self, instance_ids: Iterable[str], timeout: float) -> None:
        """Wait until every one of ``instance_ids`` is in the endpoints table; ClusterError if not."""
        registry = Registry(self.aws().dynamodb, names.endpoints_table(LOCAL_ENV))
        wanted = set(instance_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            present = {e.instance_id for e in registry.live(LOCAL_ENV, None, self.heartbeat_max_age)}
            if wanted <= present:
                return
            for instance in self.info.instances if self.info else []:
                if instance.id in wanted and not process_alive(instance.pid):
                    raise ClusterError(f"worker {instance.id} exited; see {instance.root}/logs/worker.log")
            time.sleep(0.2)
        raise ClusterError(f"instances {sorted(wanted)} did not register within {timeout:.0f}s")

    def _refuse_if_running(self) -> None:
        try:
            info = ClusterInfo.load(self.dir)
        except ClusterError:
            return
        if process_alive(info.moto_pid):
            raise ClusterError(f"a local cluster is already running in {self.dir}: "
                               f"stop it with `skynet local down --dir {self.dir}`")

    # ---- down ---------------------------------------------------------------
    def down(self) -> None:
        """Stop every process this cluster started: workers, their apps, moto's server."""
        def stop_instance(instance: InstanceInfo) -> None:
            stop_process_group(instance.pid)
            stop_app(Path(instance.root))

        info = self.recorded_info()
        self.stop_recorded([partial(stop_instance, instance) for instance in (info.instances if info else [])])
