#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian's packages, for the resilience page's
# browser test (tests/e2e/test_resilience_page.py). Installs them if missing (needs root, as
# CI runs); the test points Selenium at /usr/bin/chromedriver, so Selenium Manager never
# downloads a driver or a browser. Idempotent. Used by `make browser`, so by `make test`.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1 || ! [ -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" != 0 ]; then
    # Not root: say so; the browser test then skips (outside CI) instead of failing the rest.
    echo "scripts/browser.sh: chromium and chromium-driver are missing; run as root to install" >&2
    exit 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "$(chromium --version 2>/dev/null) / $(/usr/bin/chromedriver --version | cut -d' ' -f1-2)"
