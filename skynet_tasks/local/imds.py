"""``python -m skynet_tasks.local.imds CONFIG``: one instance's metadata service, as EC2 serves it.

It runs inside the instance's network namespace on ``169.254.169.254:80`` and answers
the IMDSv2 paths Skynet and botocore read: a session token first (``PUT /latest/api/token``;
the launch templates require tokens), then the instance id, its private address, region and
zone, its tags (``InstanceMetadataTags: enabled``), its user data, and the credentials of its
instance profile's role. EC2 gets those credentials by assuming the role; so does this
stand-in, as the IAM user that plays the EC2 service (``moto_main.SERVICE_USER_PREFIX``), so
moto checks the role's trust policy as AWS would, and each instance then acts under its own
role's policies.

Trust: the config file is written by the local cluster launcher (root, mode 0600); requests
come from the instance's own processes. Paths outside the ones below answer 404.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

TOKEN_TTL_MAX = 21600
# Renew the role's credentials this long before they expire (botocore refreshes 15 min before).
RENEW_BEFORE = 20 * 60


@dataclass
class InstanceMetadata:
    """What EC2 knows about one instance, and the credentials it holds for the instance's role."""

    instance_id: str
    local_ipv4: str
    region: str
    availability_zone: str
    tags: dict[str, str]
    user_data: str
    role_arn: str
    endpoint_url: str
    service_key_id: str
    service_secret: str
    # A fault mode (the local cluster's ``metadata_delay``): the role's credentials answered this many seconds
    # late, as a loaded host's metadata service may answer them, past botocore's default wait of 1 s.
    credentials_delay: float = 0.0
    _credentials: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def role_name(self) -> str:
        """The name of the instance's role (the last part of its ARN)."""
        return self.role_arn.rsplit("/", 1)[-1]

    def credentials(self) -> dict[str, Any]:
        """The role's credentials in IMDS's JSON shape, assumed again shortly before they expire."""
        with self._lock:
            expires = self._credentials.get("Expiration")
            if expires is None or expires.timestamp() - time.time() < RENEW_BEFORE:
                sts = boto3.client("sts", endpoint_url=self.endpoint_url, region_name=self.region,
                                   aws_access_key_id=self.service_key_id, aws_secret_access_key=self.service_secret)
                self._credentials = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=self.instance_id,
                                                    DurationSeconds=3600)["Credentials"]
            found = self._credentials
        return {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": found["AccessKeyId"],
                "SecretAccessKey": found["SecretAccessKey"], "Token": found["SessionToken"],
                "Expiration": found["Expiration"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "LastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def answer(self, path: str) -> str | None:
        """The body EC2 answers at ``path`` (under ``/latest/``), or None for a 404."""
        fixed = {
            "meta-data/instance-id": self.instance_id,
            "meta-data/local-ipv4": self.local_ipv4,
            "meta-data/placement/region": self.region,
            "meta-data/placement/availability-zone": self.availability_zone,
            "meta-data/autoscaling/target-lifecycle-state": "InService",
            "meta-data/iam/security-credentials/": self.role_name,
            "meta-data/iam/security-credentials": self.role_name,
            "meta-data/tags/instance": "\n".join(sorted(self.tags)),
            "user-data": self.user_data,
        }
        if path in fixed:
            return fixed[path]
        if path == f"meta-data/iam/security-credentials/{self.role_name}":
            time.sleep(self.credentials_delay)
            return json.dumps(self.credentials())
        if path.startswith("meta-data/tags/instance/"):
            return self.tags.get(path.removeprefix("meta-data/tags/instance/"))
        return None


def handler_for(metadata: InstanceMetadata) -> type[BaseHTTPRequestHandler]:
    """The HTTP handler that serves ``metadata`` as IMDSv2 does: a token first, then the paths."""
    tokens: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/latest/api/token":
                return self.reply(404, "")
            try:
                ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
            except ValueError:
                return self.reply(400, "X-aws-ec2-metadata-token-ttl-seconds is required")
            if not 1 <= ttl <= TOKEN_TTL_MAX:
                return self.reply(400, "token TTL out of range")
            token = secrets.token_urlsafe(32)
            tokens[token] = time.monotonic() + ttl
            self.reply(200, token)

        def do_GET(self) -> None:  # noqa: N802
            token = self.headers.get("X-aws-ec2-metadata-token", "")
            if tokens.get(token, 0) < time.monotonic():  # HttpTokens: required - no IMDSv1
                return self.reply(401, "")
            body = metadata.answer(self.path.removeprefix("/latest/")) if self.path.startswith("/latest/") else None
            self.reply(404, "") if body is None else self.reply(200, body)

        def reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

    return Handler


def main(argv: list[str]) -> None:
    """Serve the metadata described in the JSON file ``argv[0]`` until killed."""
    config = json.loads(Path(argv[0]).read_text())
    host, port = config.pop("listen", ["169.254.169.254", 80])
    metadata = InstanceMetadata(**config)
    ThreadingHTTPServer((host, int(port)), handler_for(metadata)).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
