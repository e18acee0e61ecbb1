#!/bin/sh
# Make Debian's Chromium available for the report's browser test (tests/report/test_html_in_browser.py).
# Exit 0 when chromium is (now) installed; 3 when it cannot be installed here (not root / no apt-get).
set -eu
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "chromium is not installed and this is not root: cannot apt-get install chromium" >&2
    exit 3
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is not installed and there is no apt-get to install it" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver
