"""kombu's SQS transport: its boto3 clients share the process's model loader, as Skynet's own do.

kombu 5.7 makes each of its clients (the channel's SQS client, and the SNS client of a fan-out) from a new
``boto3.Session``, whose botocore session has a loader of its own: each parses botocore's endpoint and
service models again. Measured on this machine: 0.09 s of CPU and 8 to 10 MB of memory per client, against
0.02 to 0.03 s and under 1 MB with the process's loader (``skynet_tasks.aws.new_session``). Every worker
process holds kombu's SQS client, and the group's conductor an SNS client for its broadcast
(``skynet_tasks.broadcast``), made when it first tells the group, while the canary updates.

The replacement is kombu's own ``Channel._new_boto_client`` with the session made by ``new_session``:
same region, credentials, endpoint and client configuration.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace


def _apply(stack: ExitStack) -> None:
    from botocore.config import Config
    from kombu.transport.SQS import Channel

    from skynet_tasks.aws import new_session

    def new_boto_client(self: Any, service: str, region: Any, access_key_id: Any, secret_access_key: Any,
                        session_token: Any = None, config: Any = None) -> Any:
        # (Any: boto3's per-service overloads of ``client`` want literal service names)
        session: Any = new_session(region_name=region, aws_access_key_id=access_key_id,
                                   aws_secret_access_key=secret_access_key, aws_session_token=session_token)
        client_kwargs: dict[str, Any] = {"use_ssl": self.is_secure if self.is_secure is not None else True}
        if self.endpoint_url is not None:
            client_kwargs["endpoint_url"] = self.endpoint_url
        client_config = Config(**(self.transport_options.get("client-config") or {}))
        if config is not None:
            client_config = client_config.merge(config)
        return session.client(service, config=client_config, **client_kwargs)

    replace(stack, Channel, "_new_boto_client", new_boto_client)


PATCH = Patch("sqs_shared_loader", "kombu", ">=5.7,<5.8", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
