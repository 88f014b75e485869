#!/usr/bin/env bash
# A server program from Debian's packages, installed if missing, never started as Debian's
# service: nginx (the front server of `make serve` and of the hostile-caller tests) or
# haproxy (the load balancer `make bench-fleet` compares against). The project runs each in
# the foreground on a configuration of its own. Needs root (as CI runs); idempotent.
# Usage: bash scripts/debian_server.sh nginx|haproxy
set -euo pipefail

name=${1:?usage: debian_server.sh nginx|haproxy}
case "$name" in nginx | haproxy) ;; *) echo "debian_server.sh: not one of ours: $name" >&2; exit 2 ;; esac
found=$(PATH="$PATH:/usr/sbin" command -v "$name" || true)
if [ -z "$found" ]; then
  if [ "$(id -u)" != 0 ]; then
    # Not root: say so; `make serve` then stops in one line, the tests that need it skip.
    echo "scripts/debian_server.sh: $name is missing; run as root to install it (apt-get install $name)" >&2
    exit 0
  fi
  # Install only: Debian would also start its own service; policy-rc.d says no.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$name" >/dev/null
  found=/usr/sbin/$name
fi
# The first line of the version banner. Not `| head -1`: head exits after one line, the
# program's later writes then die of SIGPIPE, and pipefail turns that into a failed target.
version=$("$found" -v 2>&1)
echo "${version%%$'\n'*}"
