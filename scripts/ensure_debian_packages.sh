#!/usr/bin/env bash
# Debian packages the project uses beside its Python ones. `make install` runs `ensure_debian_packages.sh
# train`: tcmalloc, which the train stage runs under where present (faster epochs, the same weights). `make
# test` runs it with `test`: tcmalloc (its test) and what the tests drive, Chromium for the page tests
# (through Playwright, never a downloaded browser) and promtool (Debian's prometheus) for the alert rules.
# What is missing it installs with apt-get where it may (root, or sudo without a password). Where it cannot,
# it says so loudly (training is slower, those tests skip); in CI (CI=true) that is an error instead, so CI
# always runs them.
set -euo pipefail

missing=()
# the same lookup as the train stage's (ctypes.util.find_library)
python3 -c 'import ctypes.util, sys; sys.exit(ctypes.util.find_library("tcmalloc_minimal") is None)' \
    || missing+=(libtcmalloc-minimal4)
if [ "${1:-}" = test ]; then
    command -v chromium >/dev/null || command -v google-chrome >/dev/null || command -v google-chrome-stable >/dev/null \
        || missing+=(chromium)
    command -v promtool >/dev/null || missing+=(prometheus)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo -n"
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || sudo="none"
fi
if [ "$sudo" != "none" ] && command -v apt-get >/dev/null; then
    echo "installing Debian's ${missing[*]} (apt-get)"
    $sudo apt-get update -qq
    for i in "${!missing[@]}"; do  # Debian 13 and Ubuntu 24.04 renamed such libraries ...t64 (64-bit time_t)
        apt-cache show "${missing[i]}t64" >/dev/null 2>&1 && missing[i]="${missing[i]}t64"
    done
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    exit 0
fi

message="no ${missing[*]}, and no root, sudo or apt-get to install them: training is slower without tcmalloc,
and the tests that drive the others will be SKIPPED"
if [ "${CI:-}" = "true" ]; then
    echo "error: $message" >&2
    exit 1
fi
echo "WARNING: $message (install Debian's ${missing[*]})" >&2
