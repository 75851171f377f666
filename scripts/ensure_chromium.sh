#!/usr/bin/env bash
# The service's page tests drive Debian's Chromium through Playwright (never a downloaded browser).
# `make test` runs this first: it finds a browser, or installs Debian's chromium with apt-get where it may
# (root, or sudo without a password). Where it cannot, it says so loudly and the page tests skip; in CI
# (CI=true) that is an error instead, so CI always runs them.
set -euo pipefail

for browser in chromium google-chrome google-chrome-stable; do
    command -v "$browser" >/dev/null && exit 0
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo -n"
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || sudo="none"
fi
if [ "$sudo" != "none" ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the page tests (apt-get)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
    exit 0
fi

message="no chromium, and no root, sudo or apt-get to install it: the browser tests will be SKIPPED"
if [ "${CI:-}" = "true" ]; then
    echo "error: $message" >&2
    exit 1
fi
echo "WARNING: $message (install Debian's chromium to run them)" >&2
