#!/usr/bin/env bash
# Runs the README's test command (`make test`) inside a Debian 13 (trixie) root file system:
# DOLFINx 0.9, Python 3.13, NumPy 2. Needs root (debootstrap, chroot, mounts).
#
# The root file system is built with debootstrap from Debian's archive the first time, and kept
# between runs on the same machine, outside the clone, in $MAGNETOHOM_CI_CACHE (default
# /var/cache/magnetohom): trixie-rootfs/ with the Debian packages that scripts/setup.sh installs
# and the venv (/opt/magnetohom-venv inside it, separate from the host's .venv). A root file
# system missing its completion stamp (a run cut short) is rebuilt. The clone is copied in
# (without .git, .venv and caches) to /root/magnetohom; its tests run there.
#
# Mounts (/proc, /sys, /dev, /dev/pts, /dev/shm for MPI) live in a private mount namespace
# (unshare): they go away with it whatever happens, and a trap unmounts them besides.
# Exits with `make test`'s status. Timings of each piece go to stdout ("[debian13] ... s").
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MAGNETOHOM_CI_CACHE:-/var/cache/magnetohom}
ROOTFS=$CACHE/trixie-rootfs
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STAMP=.magnetohom-rootfs-ok
log() { echo "[debian13] $*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "[debian13] needs root (debootstrap, chroot, mounts)" >&2
    exit 2
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/trixie.lock"
flock 9 # one run at a time on this machine: they share the root file system

# unmount whatever is still mounted under a directory (deepest first)
umount_under() {
    local dir mnt
    dir=$(realpath -m "$1")
    { awk '{print $2}' /proc/self/mounts | sed 's/\\040/ /g' | grep -E "^${dir}(/|$)" || true; } |
        sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

t0=$(date +%s)
if [ ! -f "$ROOTFS/$STAMP" ]; then
    command -v debootstrap >/dev/null || {
        log "installing debootstrap"
        # one apt at a time: scripts/setup.sh may be installing the host's packages meanwhile
        APT="flock /var/lock/magnetohom-apt.lock apt-get -o DPkg::Lock::Timeout=900"
        $APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq debootstrap
    }
    for d in "$ROOTFS" "$ROOTFS.partial"; do
        umount_under "$d"
        if [ -d "$d" ] && grep -qE " $(realpath -m "$d")(/| )" /proc/self/mounts; then
            echo "[debian13] $d still has mounts; not removing it" >&2
            exit 2
        fi
        rm -rf --one-file-system "$d"
    done
    log "debootstrap trixie into $ROOTFS (once per machine)"
    debootstrap --variant=minbase --include=ca-certificates,make,python3 \
        trixie "$ROOTFS.partial" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
        tail -20 "$CACHE/debootstrap.log" >&2
        exit 1
    }
    # no services start inside the chroot
    printf '#!/bin/sh\nexit 101\n' >"$ROOTFS.partial/usr/sbin/policy-rc.d"
    chmod +x "$ROOTFS.partial/usr/sbin/policy-rc.d"
    touch "$ROOTFS.partial/$STAMP"
    mv "$ROOTFS.partial" "$ROOTFS"
fi
t1=$(date +%s)
log "root file system ready: $((t1 - t0)) s"

# the clone, copied in afresh (the tests write into their tree)
SRC=/root/magnetohom
rm -rf --one-file-system "${ROOTFS:?}$SRC"
mkdir -p "$ROOTFS$SRC"
# (the Debian 12 tests may write into the tree meanwhile: tar's exit status 1, "file changed as
# we read it", is not a failure of the copy)
{ tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./out --exclude='*/__pycache__' \
    --exclude=./.pytest_cache --exclude=./.ruff_cache --exclude='*.egg-info' \
    --warning=no-file-changed -cf - . || [ $? -eq 1 ]; } |
    tar -C "$ROOTFS$SRC" -xf -
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
# pip inside trusts what this machine trusts (a proxy's CA, say): the host's CA bundle
HOST_CA=""
for f in "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$f" ] && [ -f "$f" ]; then
        cp -L "$f" "$ROOTFS/etc/ssl/host-ca-bundle.crt"
        HOST_CA=/etc/ssl/host-ca-bundle.crt
        break
    fi
done
t2=$(date +%s)

status=0
unshare --mount --propagation private bash -s "$ROOTFS" "$SRC" "$HOST_CA" <<'INNER' || status=$?
set -euo pipefail
ROOTFS=$1
SRC=$2
HOST_CA=$3
cleanup() {
    for m in dev/shm dev/pts dev sys proc; do umount -l "$ROOTFS/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
mount -t proc proc "$ROOTFS/proc"
# hwloc (Open MPI) warns on stderr without /sys
mount -t sysfs sys "$ROOTFS/sys" 2>/dev/null || mount --rbind /sys "$ROOTFS/sys"
mount --bind /dev "$ROOTFS/dev"
mount -t devpts devpts "$ROOTFS/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null ||
    mount --bind /dev/pts "$ROOTFS/dev/pts"
mount -t tmpfs -o size=2g,mode=1777 tmpfs "$ROOTFS/dev/shm"
chroot "$ROOTFS" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 CI="${CI:-}" DEBIAN_FRONTEND=noninteractive VENV=/opt/magnetohom-venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 ${HOST_CA:+PIP_CERT=$HOST_CA REQUESTS_CA_BUNDLE=$HOST_CA} \
    ${MAGNETOHOM_CI_TARGET:+TARGET=$MAGNETOHOM_CI_TARGET} \
    bash -c 'dpkg --configure -a >/dev/null 2>&1 || true  # an install cut short earlier
             cd "$0" && make ${TARGET:-test} VENV=/opt/magnetohom-venv' "$SRC"
INNER
t3=$(date +%s)
log "copy-in: $((t2 - t1)) s, make ${MAGNETOHOM_CI_TARGET:-test} in the chroot: $((t3 - t2)) s," \
    "exit status $status"
exit "$status"
