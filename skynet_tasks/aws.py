"""The one place boto3 clients are made.

Endpoint, region and credentials come from boto3's own configuration chain
(``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, the credentials chain, instance
metadata on EC2); nothing here hard-codes any of them. Callers build one
``Aws`` and pass it (or its clients) to the modules that need them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import NoCredentialsError

# Fail fast rather than hang a task: every call a worker makes is bounded. botocore's
# standard retry mode retries throttling (ProvisionedThroughputExceededException,
# ThrottlingException, RequestThrottled, SlowDown) and 5xx with jittered exponential backoff;
# 10 attempts in all make a call fail at a 10% throttle rate about once in 10^10 (6, as before,
# once in a million: a rollout makes thousands of calls, a cluster millions a day). (``adaptive`` would also slow
# every caller sharing a client after one throttle: not wanted for a conductor on a timer.)
# Transaction conflicts are not retried here: the caller decides again on a fresh read.
RETRY_ATTEMPTS = 10


def client_settings() -> dict[str, Any]:
    """The botocore client configuration of every Skynet client, kombu's SQS client among them.

    kombu's (``celeryconfig``'s ``client-config``) too: botocore's default (legacy mode, 3
    attempts) let one throttled ListQueues, as kombu opens a channel, stop a worker. An
    operator's ``AWS_MAX_ATTEMPTS`` (or a profile's ``max_attempts``), read through botocore's
    own configuration chain, still counts: a setting in code would otherwise override it.
    """
    chain = botocore.session.get_session()
    attempts = chain.get_config_variable("max_attempts")  # total attempts, as AWS_MAX_ATTEMPTS counts them
    return {
        "connect_timeout": 5,
        "read_timeout": 30,
        "retries": {"total_max_attempts": int(attempts) if attempts else RETRY_ATTEMPTS, "mode": "standard"},
    }


# One loader of service models for every session of the process. botocore parses a service's
# model (megabytes of JSON for S3 and DynamoDB) once per loader, and each new session had its own:
# a worker's pool child, forked with a new session, parsed them all again (about 30 MB of its own).
# Shared, the child reads the models its parent already loaded, from the pages they share.
_MODELS = botocore.loaders.create_loader()


# The instance metadata service, on EC2, is where an instance's role credentials come from. botocore asks it
# once, waiting 1 s, and a session that got no answer in time makes clients with no credentials, which fail
# every call for the process's life. A loaded instance (a build on its cores; the local cluster's instances,
# all on one machine) answered late enough for that: a worker never registered, a pool child failed every
# task. An instance's agent waits longer, and three times, unless its environment says otherwise; elsewhere
# (an operator's machine, no metadata service) botocore's short wait stays.
INSTANCE_METADATA_WAIT = {"AWS_METADATA_SERVICE_TIMEOUT": "3", "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "3"}


def wait_longer_for_instance_metadata(environ: MutableMapping[str, str]) -> None:
    """Make this process's botocore sessions (``environ``: its environment) wait longer for the metadata
    service, where there is one (an instance's agent, ``workers.identity``), unless set already."""
    for name, value in INSTANCE_METADATA_WAIT.items():
        environ.setdefault(name, value)


class SignedSession(boto3.session.Session):
    """A boto3 session that makes no client without credentials.

    botocore resolves a session's credentials when it makes a client and keeps the client's for good: a
    client made while the metadata service did not answer would never sign a request. Refused here instead
    (``NoCredentialsError``, as its first call would raise), the caller's next client asks the chain again.
    """

    def client(self, *args: Any, **kwargs: Any) -> Any:  # boto3's own signature: (service_name, region_name, ...)
        """boto3's ``Session.client``, once the session has credentials (given, or found by the chain)."""
        given = kwargs.get("aws_access_key_id") and kwargs.get("aws_secret_access_key")
        if not given and self.get_credentials() is None:
            raise NoCredentialsError()
        return super().client(*args, **kwargs)


def new_session(**credentials: str | None) -> boto3.session.Session:
    """A boto3 session with botocore's usual configuration chain (or the ``credentials`` and region given, as
    ``boto3.session.Session`` takes them), the process's shared model loader, and no client made without
    credentials (``SignedSession``)."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _MODELS)
    return SignedSession(botocore_session=core, **credentials)


@dataclass
class Aws:
    """A boto3 session and the clients made from it, created lazily and reused."""

    session: boto3.session.Session = field(default_factory=new_session)
    # Only for callers that hold an endpoint other than their own environment's
    # (the local cluster launcher); everything else leaves it to AWS_ENDPOINT_URL.
    endpoint_url: str | None = None
    # Only for a caller that must not wait (shell completion); everything else gets ``client_settings()``.
    config: Config | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        """The boto3 client of ``service`` (made once, then reused)."""
        if service not in self._clients:
            session: Any = self.session  # boto3's per-service overloads want literal service names
            self._clients[service] = session.client(service, config=self.config or Config(**client_settings()),
                                                    endpoint_url=self.endpoint_url)
        return self._clients[service]

    @property
    def s3(self) -> Any:
        """The S3 client."""
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        """The SQS client."""
        return self.client("sqs")

    @property
    def dynamodb(self) -> Any:
        """The DynamoDB client."""
        return self.client("dynamodb")


def aws_for(environment: dict[str, str]) -> Aws:
    """An Aws for the endpoint, region and credentials in ``environment`` (not this process's).

    Its session shares the process's model loader too: with a loader of its own, each call parsed the
    service models again, a quarter of a second of CPU for two clients, and the local cluster's callers
    (a test waiting on a rollout) make one several times a second.
    """
    session = new_session(aws_access_key_id=environment.get("AWS_ACCESS_KEY_ID"),
                          aws_secret_access_key=environment.get("AWS_SECRET_ACCESS_KEY"),
                          region_name=environment.get("AWS_DEFAULT_REGION"))
    return Aws(session, endpoint_url=environment.get("AWS_ENDPOINT_URL"))
