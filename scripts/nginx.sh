#!/usr/bin/env bash
# nginx from Debian's package: the front server `make serve` puts before each gunicorn
# (project/front.py), and the hostile-caller tests run against. Installs it if missing (needs
# root, as CI runs); it runs as the invoking user on a configuration of ours, never Debian's
# /etc/nginx. Idempotent. Used by `make nginx`, so by `make serve` and `make test`.
set -euo pipefail

nginx=$(PATH="$PATH:/usr/sbin" command -v nginx || true)
if [ -z "$nginx" ]; then
  if [ "$(id -u)" != 0 ]; then
    # Not root: say so; `make serve` then stops in one line, the hostile-caller tests skip.
    echo "scripts/nginx.sh: nginx is missing; run as root to install it (apt-get install nginx)" >&2
    exit 0
  fi
  # Install only: Debian would also start its own nginx on port 80; policy-rc.d says no.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  nginx=/usr/sbin/nginx
fi
"$nginx" -v 2>&1
