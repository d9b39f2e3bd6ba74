"""Everything one Skynet process talks to, built once from its settings and passed around."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.aws import Aws
from skynet_tasks.installer import InstanceLayout
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Registry
from skynet_tasks.resources import EnvResources, resolve
from skynet_tasks.services import SPEC_FILE, USE_SYSTEMD, ProcessServices, Services, SystemdServices
from skynet_tasks.settings import Settings


@dataclass
class Context:
    """What a task on an instance works with: its settings, AWS clients, state tables, queues and artifacts."""

    settings: Settings
    aws: Aws
    resources: EnvResources
    ledger: Ledger
    registry: Registry
    messenger: Messenger
    store: ArtifactStore
    queues: Queues

    @classmethod
    def create(cls, settings: Settings, app: Celery, aws: Aws | None = None) -> Context:
        """The context for ``settings``, sending with ``app``, on ``aws`` (default: this process's)."""
        aws = aws or Aws()
        resources = resolve(aws, settings.env, settings)
        return cls(
            settings=settings,
            aws=aws,
            resources=resources,
            ledger=Ledger(aws.dynamodb, resources.state_table),
            registry=Registry(aws.dynamodb, resources.endpoints_table),
            messenger=Messenger(app, settings.env),
            store=ArtifactStore(aws.s3, resources.repo_bucket),
            queues=Queues(aws.sqs),
        )

    @property
    def layout(self) -> InstanceLayout:
        """Where this instance keeps its releases and run files."""
        return InstanceLayout(self.settings.root)

    def services(self) -> Services:
        """The app's service manager: systemd where ``workers.units`` installed the unit, else a supervisor."""
        if (self.settings.root / USE_SYSTEMD).exists():
            return SystemdServices(self.layout.run_dir / SPEC_FILE)
        return ProcessServices(self.layout.run_dir, self.layout.logs / "app.log")
