#!/usr/bin/env bash
# Build a local systemd-enabled Debian image for podman/molecule.
#
#   scripts/build-image.sh 12     -> localhost/vps-debian:12 (bookworm)
#   scripts/build-image.sh 13     -> localhost/vps-debian:13 (trixie)
#
# No registry is needed: the root filesystem is created with debootstrap and
# loaded with `podman import`. The build is skipped when an image with the
# same tag already carries the same recipe hash (this script + the host's
# local CA certificates + mirror/proxy settings). Set FORCE=1 to rebuild.
#
# Must run as root (debootstrap/chroot). Missing host tools are installed
# with apt-get.
#
# Environment:
#   FORCE=1            rebuild even if the recipe hash matches
#   DEBIAN_MIRROR      override the mirror (default: read from host apt config,
#                      falling back to http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR   same for the security archive
#   VPS_IMAGE_REPO     image name without tag (default localhost/vps-debian)
#   BUILD_DIR          parent directory for the temporary chroot
#                      (default ${TMPDIR:-/var/tmp})

set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
START_TS=$(date +%s)

log()  { printf '==> %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { echo "$(( $(date +%s) - START_TS ))s"; }

usage() { echo "usage: $0 <12|13>" >&2; exit 2; }

[ $# -eq 1 ] || usage
case "$1" in
  12) SUITE=bookworm ;;
  13) SUITE=trixie ;;
  *) usage ;;
esac
VERSION=$1
IMAGE_REPO=${VPS_IMAGE_REPO:-localhost/vps-debian}
IMAGE="$IMAGE_REPO:$VERSION"

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap needs chroot)"

# ---------------------------------------------------------------- host tools
ensure_host_packages() {
  local missing=() pkg
  for pkg in podman runc debootstrap slirp4netns uidmap fuse-overlayfs; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
      || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing missing host packages: ${missing[*]}"
    command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} manually"
    DEBIAN_FRONTEND=noninteractive apt-get update -q \
      || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
      || die "could not install host packages: ${missing[*]}"
  fi
}
ensure_host_packages

# shellcheck source=scripts/env.sh
. "$SCRIPT_DIR/env.sh"

# ------------------------------------------------------- mirror / proxy config
# Print the first URI in the host's apt sources whose path matches $1
# (a sed-style regex on the URI), excluding cdrom/file entries.
host_apt_uri() {
  local want=$1 f
  {
    [ -f /etc/apt/sources.list ] && grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list \
      | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
    for f in /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      grep -hE '^[[:space:]]*deb[[:space:]]' "$f" | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
    done
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      # deb822: "URIs: a b c" (Enabled: no stanzas are rare; ignored here)
      grep -hiE '^URIs:' "$f" | sed -E 's/^URIs:[[:space:]]*//I' | tr ' ' '\n'
    done
  } 2>/dev/null | grep -E '^https?://' | grep -E "$want" | head -n1 | sed -E 's#/+$##'
}

MIRROR=${DEBIAN_MIRROR:-$(host_apt_uri '/debian$' || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(host_apt_uri '/debian-security$' || true)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# Proxy: apt's own configuration first, then the usual environment variables.
apt_conf_value() {
  apt-config dump 2>/dev/null | sed -nE "s/^$1 \"(.*)\";\$/\\1/Ip" | head -n1
}
HTTP_PROXY_VAL=$(apt_conf_value 'Acquire::http::Proxy' || true)
HTTPS_PROXY_VAL=$(apt_conf_value 'Acquire::https::Proxy' || true)
HTTP_PROXY_VAL=${HTTP_PROXY_VAL:-${http_proxy:-${HTTP_PROXY:-}}}
HTTPS_PROXY_VAL=${HTTPS_PROXY_VAL:-${https_proxy:-${HTTPS_PROXY:-}}}
case "$HTTP_PROXY_VAL" in DIRECT|direct|false) HTTP_PROXY_VAL= ;; esac
case "$HTTPS_PROXY_VAL" in DIRECT|direct|false) HTTPS_PROXY_VAL= ;; esac

# Local CA certificates to trust inside the image (TLS-intercepting proxies).
shopt -s nullglob
CA_CERTS=(/usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt)
shopt -u nullglob

# ----------------------------------------------------------------- recipe hash
RECIPE_HASH=$(
  {
    cat "$SCRIPT_PATH"
    echo "suite=$SUITE mirror=$MIRROR security=$SECURITY_MIRROR"
    echo "http_proxy=$HTTP_PROXY_VAL https_proxy=$HTTPS_PROXY_VAL"
    for c in "${CA_CERTS[@]}"; do echo "ca=$c"; cat "$c"; done
  } | sha256sum | cut -d' ' -f1
)

if [ "${FORCE:-0}" != 1 ] && podman image exists "$IMAGE"; then
  current=$(podman image inspect --format '{{ index .Labels "org.vps.recipe-hash" }}' "$IMAGE" 2>/dev/null || true)
  if [ "$current" = "$RECIPE_HASH" ]; then
    log "$IMAGE is up to date (recipe ${RECIPE_HASH:0:12}); nothing to do"
    exit 0
  fi
  log "$IMAGE exists but recipe changed (${current:0:12} -> ${RECIPE_HASH:0:12}); rebuilding"
fi

# ------------------------------------------------------------------- chroot
BUILD_PARENT=${BUILD_DIR:-${TMPDIR:-/var/tmp}}
mkdir -p "$BUILD_PARENT"
WORK=$(mktemp -d "$BUILD_PARENT/vps-debian-$VERSION.XXXXXX")
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"

cleanup() {
  local rc=$?
  # Unmount anything debootstrap or we left mounted below the chroot,
  # deepest first, then delete the tree without crossing filesystems.
  if [ -d "$ROOTFS" ]; then
    awk -v r="$ROOTFS" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts \
      | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  rm -rf --one-file-system "$WORK"
  if [ $rc -ne 0 ]; then
    printf 'ERROR: building %s failed (exit %s) after %s; chroot removed\n' "$IMAGE" "$rc" "$(elapsed)" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_chroot() {
  LC_ALL=C.UTF-8 LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    chroot "$ROOTFS" /usr/bin/env -u TMPDIR PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

INCLUDE_PKGS=(
  systemd systemd-sysv dbus
  python3 python3-apt python3-venv
  sudo ca-certificates iproute2 procps curl
  openssh-server
)

log "debootstrap $SUITE from $MIRROR into $ROOTFS ..."
(
  [ -n "$HTTP_PROXY_VAL" ] && export http_proxy="$HTTP_PROXY_VAL"
  [ -n "$HTTPS_PROXY_VAL" ] && export https_proxy="$HTTPS_PROXY_VAL"
  debootstrap --variant=minbase --merged-usr \
    --include="$(IFS=,; echo "${INCLUDE_PKGS[*]}")" \
    "$SUITE" "$ROOTFS" "$MIRROR"
) > "$WORK/debootstrap.log" 2>&1 || {
  tail -n 40 "$WORK/debootstrap.log" >&2
  die "debootstrap $SUITE failed (see output above)"
}
log "debootstrap $SUITE done ($(elapsed))"

log "configuring apt sources and proxy ..."
rm -f "$ROOTFS/etc/apt/sources.list"
cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
{
  [ -n "$HTTP_PROXY_VAL" ] && echo "Acquire::http::Proxy \"$HTTP_PROXY_VAL\";"
  [ -n "$HTTPS_PROXY_VAL" ] && echo "Acquire::https::Proxy \"$HTTPS_PROXY_VAL\";"
  true
} > "$ROOTFS/etc/apt/apt.conf.d/01proxy"
[ -s "$ROOTFS/etc/apt/apt.conf.d/01proxy" ] || rm -f "$ROOTFS/etc/apt/apt.conf.d/01proxy"
# Keep the image small: no recommends by default (Ansible's apt module
# still honours install_recommends per task).
cat > "$ROOTFS/etc/apt/apt.conf.d/02norecommends" <<'EOF'
APT::Install-Recommends "false";
EOF

log "installing ${#CA_CERTS[@]} local CA certificate(s) ..."
mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
for c in "${CA_CERTS[@]}"; do
  install -m 0644 "$c" "$ROOTFS/usr/local/share/ca-certificates/$(basename "$c")"
done
# (c_rehash warns about the bundle file itself; that is expected.)
in_chroot update-ca-certificates 2>&1 | grep -v 'does not contain exactly one certificate' >&2 || true
in_chroot test -s /etc/ssl/certs/ca-certificates.crt \
  || die "update-ca-certificates did not produce a CA bundle"

log "configuring systemd for containers ..."
# Empty machine-id: systemd generates one at boot (per container).
: > "$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$ROOTFS/var/lib/dbus/machine-id"
# Units that make no sense (or fail) inside a container, and timers that
# would run apt behind Ansible's back.
MASK_UNITS=(
  getty.target console-getty.service getty@tty1.service serial-getty@.service
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
  systemd-udev-trigger.service systemd-udev-settle.service
  systemd-remount-fs.service systemd-modules-load.service
  systemd-hwdb-update.service systemd-firstboot.service
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount
  sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount
  proc-sys-fs-binfmt_misc.automount systemd-binfmt.service
  systemd-sysctl.service systemd-journald-audit.socket
  systemd-networkd-wait-online.service systemd-pcrphase.service
  systemd-pcrphase-sysinit.service systemd-pcrphase-initrd.service
  apt-daily.timer apt-daily-upgrade.timer
  e2scrub_all.timer e2scrub_reap.service fstrim.timer
)
for u in "${MASK_UNITS[@]}"; do
  ln -sf /dev/null "$ROOTFS/etc/systemd/system/$u"
done
in_chroot systemctl set-default multi-user.target >/dev/null 2>&1 \
  || ln -sf /lib/systemd/system/multi-user.target "$ROOTFS/etc/systemd/system/default.target"
printf 'LANG=C.UTF-8\n' > "$ROOTFS/etc/default/locale"
in_chroot locale -a 2>/dev/null | grep -qiE '^C\.utf-?8$' \
  || die "C.UTF-8 locale missing in the $SUITE root"

log "configuring sshd ..."
# Each container makes its own host keys at first boot; Ansible logs in as
# root with the key the test or demo puts into authorized_keys.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
mkdir -p "$ROOTFS/etc/systemd/system/ssh.service.d"
cat > "$ROOTFS/etc/systemd/system/ssh.service.d/host-keys.conf" <<'EOF2'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF2
in_chroot systemctl enable ssh.service >/dev/null 2>&1 \
  || ln -sf /lib/systemd/system/ssh.service "$ROOTFS/etc/systemd/system/multi-user.target.wants/ssh.service"

# The container engine manages these.
rm -f "$ROOTFS/etc/resolv.conf" "$ROOTFS/etc/hostname"
: > "$ROOTFS/etc/hostname"

log "cleaning up the root filesystem ..."
in_chroot apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* \
       "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/root/.bash_history
mkdir -p "$ROOTFS/var/lib/apt/lists/partial"
# Remove anything left mounted by debootstrap before archiving.
awk -v r="$ROOTFS" 'index($2, r "/") == 1 {print $2}' /proc/self/mounts \
  | sort -r | while read -r m; do umount -l "$m"; done

log "importing into podman as $IMAGE ..."
OLD_ID=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
tar --numeric-owner --xattrs --acls -C "$ROOTFS" -cf - . \
  | podman import \
      --change 'CMD ["/lib/systemd/systemd"]' \
      --change 'STOPSIGNAL SIGRTMIN+3' \
      --change 'ENV container=podman' \
      --change 'ENV LANG=C.UTF-8' \
      --change "LABEL org.vps.recipe-hash=$RECIPE_HASH" \
      --change "LABEL org.vps.debian-suite=$SUITE" \
      --change "LABEL org.opencontainers.image.title=vps-debian" \
      --change "LABEL org.opencontainers.image.version=$VERSION" \
      --message "debootstrap $SUITE (recipe $RECIPE_HASH)" \
      --quiet - "$IMAGE" >/dev/null \
  || die "podman import failed"
NEW_ID=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
  podman rmi "$OLD_ID" >/dev/null 2>&1 || log "old image ${OLD_ID:0:12} still in use; left in place"
fi

log "built $IMAGE (${NEW_ID:0:12}, recipe ${RECIPE_HASH:0:12}) in $(elapsed)"
