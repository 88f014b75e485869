#!/usr/bin/env bash
# HAProxy from Debian's package: the load balancer the several-replicas benchmark compares
# Orders' own balancing against (bench/fleet.py). Installs it if missing (needs root, as CI
# runs); the benchmark runs it in the foreground on a configuration of its own, never
# Debian's service. Idempotent. Used by `make haproxy`, so by `make bench-fleet` and `make test`.
set -euo pipefail

haproxy=$(PATH="$PATH:/usr/sbin" command -v haproxy || true)
if [ -z "$haproxy" ]; then
  if [ "$(id -u)" != 0 ]; then
    # Not root: say so; the benchmark's smoke test then skips.
    echo "scripts/haproxy.sh: haproxy is missing; run as root to install it (apt-get install haproxy)" >&2
    exit 0
  fi
  # Install only: Debian would also start its own haproxy; policy-rc.d says no.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  haproxy=/usr/sbin/haproxy
fi
"$haproxy" -v 2>&1 | head -1
