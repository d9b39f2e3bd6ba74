"""Who this instance is: from SKYNET_* variables, or on EC2 from instance metadata and tags.

On EC2 the user data writes the env, layer and buckets into /etc/skynet/env;
the instance id and private address come from IMDSv2 here, and a
``maintenance-group`` tag overrides the default group when tags are exposed in
metadata.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from http.client import HTTPException

from skynet_tasks.aws import wait_longer_for_instance_metadata
from skynet_tasks.httpcheck import http_get

log = logging.getLogger(__name__)

IMDS_HOST = "169.254.169.254"


def _imds(path: str, token: str, timeout: float) -> str | None:
    try:
        status, body = http_get(IMDS_HOST, 80, f"/latest/{path}", timeout,
                                headers={"X-aws-ec2-metadata-token": token})
    except (OSError, HTTPException):
        return None
    return body.decode() if status == 200 else None


def fill_from_ec2(environ: MutableMapping[str, str], timeout: float = 1.0) -> bool:
    """Fill SKYNET_INSTANCE_ID, SKYNET_ADDRESS and SKYNET_GROUP from IMDSv2 when unset; False off EC2."""
    if environ.get("SKYNET_INSTANCE_ID"):
        return False
    try:
        status, body = http_get(IMDS_HOST, 80, "/latest/api/token", timeout, method="PUT",
                                headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
    except (OSError, HTTPException):
        return False
    if status != 200:
        return False
    token = body.decode()
    instance_id = _imds("meta-data/instance-id", token, timeout)
    if not instance_id:
        return False
    environ["SKYNET_INSTANCE_ID"] = instance_id.lower()
    address = _imds("meta-data/local-ipv4", token, timeout)
    if address and not environ.get("SKYNET_ADDRESS"):
        environ["SKYNET_ADDRESS"] = address
    group = _imds("meta-data/tags/instance/maintenance-group", token, timeout)
    if group and not environ.get("SKYNET_GROUP"):
        environ["SKYNET_GROUP"] = group
    wait_longer_for_instance_metadata(environ)  # the role's credentials come from it too
    log.info("identity from EC2 metadata: %s", instance_id)
    return True


def resolve_identity() -> None:
    """Complete this process's identity in os.environ before settings are read."""
    fill_from_ec2(os.environ)
