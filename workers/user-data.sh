#!/bin/bash
# First boot of a Skynet instance (embedded in cloudformation/php-nginx.yaml's Mappings).
# The launch template exports SKYNET_ENV, SKYNET_LAYER, SKYNET_REPO, SKYNET_BRANCH, SKYNET_APP_PORT,
# the bucket names, SKYNET_WHEEL_KEY, AWS_DEFAULT_REGION and SKYNET_LIFECYCLE_HOOK before it.
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv git nginx-light php-fpm
systemctl disable --now nginx php8.2-fpm || true
python3 -m venv /opt/skynet
/opt/skynet/bin/pip install -q boto3
/opt/skynet/bin/python - <<'PY'
import boto3, os
boto3.client("s3").download_file(os.environ["SKYNET_REPO_BUCKET"], os.environ["SKYNET_WHEEL_KEY"],
                                 "/tmp/" + os.path.basename(os.environ["SKYNET_WHEEL_KEY"]))
PY
/opt/skynet/bin/pip install -q "/tmp/$(basename "$SKYNET_WHEEL_KEY")"
mkdir -p /etc/skynet /srv/skynet
env | grep -E '^(SKYNET_|AWS_DEFAULT_REGION)' > /etc/skynet/env
cp "$(/opt/skynet/bin/python -c 'import workers, os; print(os.path.dirname(workers.__file__))')/skynet-worker.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now skynet-worker
