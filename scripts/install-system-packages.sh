#!/usr/bin/env bash
# Installs the Debian packages Skynet's local mode and tests use, only those missing.
# nginx: the reverse-proxy layer; php-fpm: the PHP stack recipe; openssh-server: the
# deploy-key clone test; git: builds; chromium: the dashboard's browser tests; iproute2: the
# stack-built local cluster; nftables: its security groups; prometheus: the metrics tests (a real
# Prometheus scrapes the dashboard; its promtool checks the metrics and the alert rules).
# Run as root (or with sudo available).
set -euo pipefail

want=()
command -v git >/dev/null 2>&1 || want+=(git)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || want+=(nginx-light)
ls /usr/sbin/php-fpm* >/dev/null 2>&1 || want+=(php-fpm)
[ -x /usr/sbin/sshd ] || want+=(openssh-server)
# ip (network namespaces, one per instance of the stack-built local cluster).
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || want+=(iproute2)
# nft: the security groups' rules inside those namespaces.
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || want+=(nftables)
# The dashboard's browser tests drive Debian's chromium through its chromedriver.
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
# The metrics tests run Debian's prometheus with their own config; promtool comes with it.
command -v promtool >/dev/null 2>&1 || want+=(prometheus)

if [ ${#want[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${want[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# Packages may start system services; Skynet runs its own instances on loopback instead.
for service in nginx php*-fpm ssh prometheus prometheus-node-exporter; do
  $sudo service "$service" stop >/dev/null 2>&1 || true
done
