#!/bin/bash
# First boot of a Skynet instance (embedded in cloudformation/php-nginx.yaml's Mappings).
# The launch template exports SKYNET_ENV, SKYNET_LAYER, SKYNET_REPO, SKYNET_BRANCH, SKYNET_APP_PORT,
# the bucket names, SKYNET_WHEEL_PARAMETER (the SSM parameter pinning the agent wheel), AWS_DEFAULT_REGION
# and SKYNET_LIFECYCLE_HOOK before it. The local cluster runs this same script in each instance's namespaces.
set -euo pipefail
# 1. The host: Debian's packages and a virtual environment for the agent. An image that has
#    them already (a baked AMI; the local cluster's instances) skips this step.
if [ ! -x /opt/skynet/bin/python ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv git nginx-light php-fpm polkitd nftables
  systemctl disable --now nginx php8.2-fpm || true
  python3 -m venv /opt/skynet
  /opt/skynet/bin/python -m pip install -q boto3
fi
# 2. The agent: the wheel the stack pins in SSM ({"key", "sha256"}; skynet agent push moves the pin),
#    read now rather than baked into the user data, installed only if its sha256 is the pinned one.
#    Its credentials come from instance metadata, which a loaded host may answer late: botocore gets
#    time and retries here, as the agent's own sessions do (skynet_tasks/aws.py).
wheel=$(AWS_METADATA_SERVICE_TIMEOUT=3 AWS_METADATA_SERVICE_NUM_ATTEMPTS=3 /opt/skynet/bin/python - <<'PY'
import hashlib, json, os, sys, tempfile, boto3
name = os.environ["SKYNET_WHEEL_PARAMETER"]
pin = json.loads(boto3.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])
key, pinned = pin["key"], pin["sha256"]
# A folder of its own (0700): never a predictable name in /tmp, written as root.
path = os.path.join(tempfile.mkdtemp(prefix="skynet-wheel-"), os.path.basename(key))
boto3.client("s3").download_file(os.environ["SKYNET_REPO_BUCKET"], key, path)
digest = hashlib.sha256()
with open(path, "rb") as wheel:
    for block in iter(lambda: wheel.read(1 << 20), b""):
        digest.update(block)
if digest.hexdigest() != pinned:
    os.unlink(path)
    sys.exit(f"skynet: {key} has sha256 {digest.hexdigest()}, the stack pins {pinned} ({name}): not installed")
print(path)
PY
)
/opt/skynet/bin/python -m pip install -q "$wheel"
# 3. Instance metadata serves the role's credentials: only root and the worker's user may reach it,
#    never the app, a build step or a hook. The users exist first (workers.accounts; the boot finds them).
/opt/skynet/bin/python -m workers.accounts
nft -f - <<'NFT'
table inet skynet-metadata {
  chain output {
    type filter hook output priority filter; policy accept;
    ip daddr 169.254.169.254 meta skuid != { 0, "skynet" } counter reject
  }
}
NFT
# 4. The instance: identity from instance metadata, its settings file, its worker.
exec /opt/skynet/bin/python -m workers.boot
