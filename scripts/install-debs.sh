#!/usr/bin/env bash
# Redis, Prometheus, Alertmanager and promtool from Debian's packages (idempotent); podman, runc and debootstrap for
# the images; containerd, the CNI plugins, iptables and ipset for the real node (ipset: the NetworkPolicy agent).
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
# chromium and its driver: the console's browser tests
for tool in podman runc debootstrap containerd iptables ipset chromium; do command -v $tool >/dev/null || need+=($tool); done
command -v chromedriver >/dev/null || need+=(chromium-driver)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# the packages' own services are not wanted: the project starts its servers itself
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
for svc in redis-server prometheus prometheus-alertmanager containerd; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
