#!/usr/bin/env bash
# Installs what the test suite and the benchmarks need beyond the Python
# packages (`make install-test` installs those first, then runs this):
#
#   chromium          /usr/bin/chromium for the Playwright tests (tests/e2e)
#   nginx-light, wrk  for bench/ (any nginx already installed will do)
#   haproxy           for bench/http_proxy.py: the splicing proxy it compares with
#   .venv-mitmproxy   mitmproxy in its own venv (it pins an old Brotli that
#                     would clash with ours in .venv)
#
# Idempotent and silent when everything is there; prints one line per thing
# it installed. Debian/Ubuntu (apt-get); runs apt-get as root, or through sudo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
MITM_VENV="$ROOT/.venv-mitmproxy"

die() {
    echo "install-test-deps: $*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# Installed according to dpkg (not just "known"): status "install ok installed".
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

# --- what is missing ---------------------------------------------------------
missing=()

[ -x /usr/bin/chromium ] || missing+=(chromium)

# nginx lives in /usr/sbin, which is not on every user's PATH.
if ! have nginx && [ ! -x /usr/sbin/nginx ]; then
    missing+=(nginx-light)
fi

have wrk || missing+=(wrk)

if ! have haproxy && [ ! -x /usr/sbin/haproxy ]; then
    missing+=(haproxy)
fi

# Headless Chromium renders text with whatever fonts exist; without any, every
# glyph of a screenshot is a box. Chromium's dependencies usually bring one.
if ! installed fonts-liberation && ! installed fonts-dejavu-core \
    && [ -z "$(find /usr/share/fonts -type f \( -name '*.ttf' -o -name '*.otf' \) -print -quit 2>/dev/null)" ]; then
    missing+=(fonts-liberation)
fi

# Debian's python3 has no ensurepip (so no `python3 -m venv`) without python3-venv.
need_mitm=0
if [ ! -x "$MITM_VENV/bin/mitmdump" ]; then
    need_mitm=1
    have "$PYTHON" || die "$PYTHON not found (set PYTHON=... to choose another interpreter)"
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
fi

# --- apt-get -------------------------------------------------------------------
if [ "${#missing[@]}" -gt 0 ]; then
    have apt-get || die "missing ${missing[*]}, and apt-get is not available: install them by hand"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif have sudo; then
        SUDO=(sudo)
    else
        die "missing ${missing[*]}: run this script as root (or install sudo)"
    fi
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    apt() {
        if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$log" 2>&1; then
            cat "$log" >&2
            die "apt-get $* failed"
        fi
    }
    apt update -q
    apt install -y -q --no-install-recommends "${missing[@]}"
    for pkg in "${missing[@]}"; do
        echo "installed $pkg (apt)"
    done
    [ -x /usr/bin/chromium ] || die "chromium was installed but /usr/bin/chromium does not exist"
fi

# --- mitmproxy -----------------------------------------------------------------
if [ "$need_mitm" -eq 1 ]; then
    log="${log:-$(mktemp)}"
    trap 'rm -f "$log"' EXIT
    # Always from scratch: a venv left half-made by an interrupted run (or with
    # mitmdump deleted) would otherwise make pip say "already satisfied".
    if ! "$PYTHON" -m venv --clear "$MITM_VENV" >"$log" 2>&1; then
        cat "$log" >&2
        die "could not create $MITM_VENV with $PYTHON -m venv"
    fi
    if ! "$MITM_VENV/bin/python" -m pip install -q --disable-pip-version-check mitmproxy >"$log" 2>&1; then
        cat "$log" >&2
        die "pip install mitmproxy into $MITM_VENV failed"
    fi
    [ -x "$MITM_VENV/bin/mitmdump" ] || die "mitmproxy was installed but $MITM_VENV/bin/mitmdump does not exist"
    echo "installed mitmproxy $("$MITM_VENV/bin/mitmdump" --version 2>/dev/null | sed -n 's/^Mitmproxy: *//p' | head -1) into .venv-mitmproxy"
fi
