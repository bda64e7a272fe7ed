# shellcheck shell=bash
# Shared helpers for the scripts/ commands: find (or build) a Python >= 3.14.2 environment and run
# commands inside it. Sourced, never executed.
#
# Home Assistant 2026.10 needs Python >= 3.14.2. When the machine has one (python3.14 on PATH,
# `uv python find`, or pyenv), a virtualenv is made with it. Otherwise a minimal Debian-testing
# root filesystem (debootstrap) is built once and cached outside the repository; commands then run
# inside it through chroot in a private mount namespace, with the repository bind-mounted at the
# same absolute path, so callers never see the difference.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DCP_CACHE="${DCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datacenter-power}"
ROOTFS="$DCP_CACHE/rootfs"
MIN_PY="3.14.2"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

_py_ok() {  # _py_ok PYTHON -> exit 0 when it is >= MIN_PY and has venv
    "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 14, 2) else 1)' 2>/dev/null
}

find_native_python() {
    local cand
    for cand in "${DCP_PYTHON:-}" python3.14 python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 && _py_ok "$(command -v "$cand")"; then
            command -v "$cand"; return 0
        fi
    done
    if command -v uv >/dev/null 2>&1; then
        cand="$(uv python find '>=3.14.2' 2>/dev/null || true)"
        if [ -n "$cand" ] && _py_ok "$cand"; then echo "$cand"; return 0; fi
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local v
        for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[4-9]|[2-9][0-9])' | sort -rV); do
            cand="$(pyenv root)/versions/$v/bin/python3"
            if [ -x "$cand" ] && _py_ok "$cand"; then echo "$cand"; return 0; fi
        done
    fi
    return 1
}

# Which environment to use: "native" (a venv in the cache) or "chroot" (the Debian-testing rootfs).
env_kind() {
    if [ "${DCP_FORCE_CHROOT:-0}" != "1" ] && find_native_python >/dev/null; then echo native; else echo chroot; fi
}

# The Debian mirror: DCP_DEBIAN_MIRROR when set, else the one this machine's own apt sources use;
# empty when neither says (debootstrap then uses its own default). No host is written here.
debian_mirror() {
    local uri="${DCP_DEBIAN_MIRROR:-}"
    if [ -z "$uri" ] && compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        uri="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)"
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri="$(grep -E '^deb ' /etc/apt/sources.list | grep -v security | awk '{print $2}' | head -n1 || true)"
    fi
    echo "$uri"
}

# Packages the root filesystem needs beyond Python: a compiler and headers, because Home
# Assistant's frontend imports pymicro-vad and pyspeex-noise (via assist_pipeline), which have no
# wheel for this platform and build from source; Chromium for the browser check (Playwright drives
# it; nothing may download a browser). Bump ROOTFS_EXTRAS_VERSION when this list changes.
ROOTFS_EXTRAS="gcc g++ python3.14-dev chromium fonts-dejavu-core postgresql mosquitto"
ROOTFS_EXTRAS_VERSION=3

build_rootfs() {
    if [ ! -x "$ROOTFS/usr/bin/python3.14" ]; then
        [ "$(id -u)" = 0 ] || { log "building the Python 3.14 root filesystem needs root (or install Python >= $MIN_PY)"; exit 1; }
        if ! command -v debootstrap >/dev/null 2>&1; then
            log "installing debootstrap"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
        fi
        local mirror tmp
        mirror="$(debian_mirror)"
        tmp="$ROOTFS.partial"
        rm -rf "$tmp"; mkdir -p "$tmp"
        log "building a Debian testing root filesystem with Python 3.14 in $ROOTFS (${mirror:-the default mirror of debootstrap}, about 30 s)"
        local args=(--variant=minbase --include=python3.14,python3.14-venv,ca-certificates testing "$tmp")
        if [ -n "$mirror" ]; then args+=("$mirror" /usr/share/debootstrap/scripts/sid); fi
        debootstrap "${args[@]}" >"$DCP_CACHE/debootstrap.log" 2>&1 \
            || { log "debootstrap failed; see $DCP_CACHE/debootstrap.log"; tail -n 20 "$DCP_CACHE/debootstrap.log" >&2; exit 1; }
        mv "$tmp" "$ROOTFS"
    fi
    rootfs_extras
}

# rootfs_extras: install ROOTFS_EXTRAS once (stamped), also into a root filesystem built before.
rootfs_extras() {
    local stamp="$ROOTFS/var/lib/dcp-extras"
    [ "$(cat "$stamp" 2>/dev/null || true)" = "$ROOTFS_EXTRAS_VERSION" ] && return 0
    [ "$(id -u)" = 0 ] || { log "installing $ROOTFS_EXTRAS into the root filesystem needs root"; exit 1; }
    log "installing $ROOTFS_EXTRAS into the root filesystem (once, about a minute)"
    cp -f /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
    # The testing suite's Release file served here can be past its Valid-Until date.
    unshare --mount --propagation private -- /bin/bash -c '
        set -e
        mount -t proc proc "$1/proc"
        chroot "$1" /usr/bin/env DEBIAN_FRONTEND=noninteractive /bin/bash -c "
            apt-get -o Acquire::Check-Valid-Until=false update -qq &&
            apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends $2 &&
            apt-get clean"
    ' _ "$ROOTFS" "$ROOTFS_EXTRAS" >"$DCP_CACHE/rootfs-extras.log" 2>&1 \
        || { log "installing $ROOTFS_EXTRAS failed; see $DCP_CACHE/rootfs-extras.log"; tail -n 20 "$DCP_CACHE/rootfs-extras.log" >&2; exit 1; }
    echo "$ROOTFS_EXTRAS_VERSION" >"$stamp"
}

# venv location as seen by the commands that use it
venv_dir() {
    if [ "$(env_kind)" = native ]; then echo "$DCP_CACHE/venv"; else echo "/opt/dcp-venv"; fi
}

# Commands see the project's cache as DCP_CACHE (scripts/pg_server.py keeps PostgreSQL's data
# there). Inside the root filesystem it is /var/cache/datacenter-power: the root filesystem
# itself lives in the cache, and the postgres user can reach it there (not under /root).
export DCP_CACHE
# run_in_env CMD... : run a command with the project's venv first on PATH, in the repository root.
# One BLAS thread: the engine does many small least-squares fits, where BLAS threads cost more in
# hand-offs than they save (measured: a forecaster refit 37-66 ms threaded, 2-5 ms single).
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
run_in_env() {
    local venv; venv="$(venv_dir)"
    if [ "$(env_kind)" = native ]; then
        (cd "$REPO_ROOT" && PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" "$@")
    else
        _chroot_env "$venv" "$@"
    fi
}

# exec_in_env CMD... : like run_in_env, but the command replaces this shell (same process id).
# For long-running stacks (scripts/develop): a signal sent to the script's pid, or Ctrl-C in its
# terminal, reaches the command itself once, instead of a waiting shell.
exec_in_env() {
    local venv; venv="$(venv_dir)"
    if [ "$(env_kind)" = native ]; then
        cd "$REPO_ROOT" && PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" exec "$@"
    else
        _EXEC=exec _chroot_env "$venv" "$@"
    fi
}

# _chroot_env VENV CMD... : run CMD inside the Debian-testing root filesystem (see run_in_env).
_chroot_env() {
    local venv="$1"; shift
    {
        [ "$(id -u)" = 0 ] || { log "running inside the root filesystem needs root"; exit 1; }
        # Copied only when changed, and atomically: commands running in the environment at
        # the same time read these (a truncated CA bundle stops Home Assistant from starting).
        local src dst
        for src in /etc/resolv.conf /etc/ssl/certs/ca-certificates.crt; do
            dst="$ROOTFS$src"
            [ -f "$src" ] && ! cmp -s "$src" "$dst" || continue
            mkdir -p "$(dirname "$dst")"
            cp -f "$src" "$dst.$$" 2>/dev/null && mv -f "$dst.$$" "$dst" || rm -f "$dst.$$"
        done
        mkdir -p "$ROOTFS$REPO_ROOT"
        # ../shared (example scenarios, check tools) is visible inside too when it exists.
        local shared; shared="$(cd "$REPO_ROOT/.." && pwd)/shared"
        [ -d "$shared" ] && mkdir -p "$ROOTFS$shared" || shared=""
        # A private mount namespace: the bind mounts vanish with the command, so nothing is left
        # mounted inside the cache (deleting it can never reach the host's /dev or /proc).
        ${_EXEC:-} unshare --mount --propagation private -- /bin/bash -c '
            set -e
            R="$1"; REPO="$2"; VENV="$3"; SHARED="$4"; shift 4
            mount --rbind /dev "$R/dev"
            mount -t proc proc "$R/proc"
            mount -t tmpfs tmpfs "$R/tmp" 2>/dev/null || true
            # (after the tmpfs: a repository under /tmp needs its mount point inside it)
            mkdir -p "$R$REPO"
            mount --bind "$REPO" "$R$REPO"
            [ -z "$SHARED" ] || { mkdir -p "$R$SHARED" && mount --bind -o ro "$SHARED" "$R$SHARED"; }
            exec chroot "$R" /usr/bin/env PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
                VIRTUAL_ENV="$VENV" HOME=/root DCP_CACHE=/var/cache/datacenter-power PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
                SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CONSTRAINT= PIP_FIND_LINKS= \
                PIP_EXTRA_INDEX_URL= /bin/bash -c "cd \"\$0\" && exec \"\$@\"" "$REPO" "$@"
        ' _ "$ROOTFS" "$REPO_ROOT" "$venv" "$shared" "$@"
    }
}

# ensure_env: build the environment when missing and (re)install requirements when they changed.
ensure_env() {
    mkdir -p "$DCP_CACHE"
    local kind venv stamp want have
    kind="$(env_kind)"
    venv="$(venv_dir)"
    if [ "$kind" = native ]; then
        local py; py="$(find_native_python)"
        [ -x "$venv/bin/python" ] || { log "creating venv with $py"; "$py" -m venv "$venv"; }
        stamp="$venv/.requirements.sha"
    else
        build_rootfs
        if [ ! -f "$ROOTFS$venv/pyvenv.cfg" ]; then
            log "creating venv inside the root filesystem"
            chroot "$ROOTFS" /usr/bin/python3.14 -m venv "$venv"
        fi
        stamp="$ROOTFS$venv/.requirements.sha"
    fi
    want="$(sha256sum "$REPO_ROOT/requirements_test.txt" | cut -c1-16)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [ "$want" != "$have" ]; then
        log "installing requirements ($kind environment; about a minute the first time)"
        run_in_env python -m pip install -q --disable-pip-version-check -r requirements_test.txt
        echo "$want" >"$stamp"
    fi
}
