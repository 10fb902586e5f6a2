# shellcheck shell=bash
# Source this file (". scripts/env.sh") to point podman at the project-local
# containers.conf. It (re)renders .cache/containers.conf from
# scripts/containers.conf.in using the current hard ulimits.
#
# Variables honoured:
#   VPS_NOFILE_MAX / VPS_NPROC_MAX  upper bounds for the container ulimits
#                                   (defaults 65536 / 32768)

_vps_env_dir=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
VPS_REPO_ROOT=$(cd "$_vps_env_dir/.." && pwd)
export VPS_REPO_ROOT

_vps_limit() {
  # $1: hard limit as printed by ulimit -H; $2: cap
  case "$1" in
    unlimited|'') echo "$2" ;;
    *) if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi ;;
  esac
}

_vps_nofile=$(_vps_limit "$(ulimit -Hn)" "${VPS_NOFILE_MAX:-65536}")
_vps_nproc=$(_vps_limit "$(ulimit -Hu)" "${VPS_NPROC_MAX:-32768}")

mkdir -p "$VPS_REPO_ROOT/.cache"
_vps_conf=$(mktemp "$VPS_REPO_ROOT/.cache/containers.conf.XXXXXX")
sed -e "s/@NOFILE@/$_vps_nofile/g" -e "s/@NPROC@/$_vps_nproc/g" \
  "$_vps_env_dir/containers.conf.in" > "$_vps_conf" \
  && chmod 0644 "$_vps_conf" && mv -f "$_vps_conf" "$VPS_REPO_ROOT/.cache/containers.conf"

export CONTAINERS_CONF="$VPS_REPO_ROOT/.cache/containers.conf"

# The key Ansible logs in to the test and demo containers with, made once
# per checkout. make -j sources this file from several recipes at once: the
# lock lets one make the key, and the others see both halves of it.
VPS_SSH_KEY="$VPS_REPO_ROOT/.cache/ssh/id_ed25519"
mkdir -p "$(dirname "$VPS_SSH_KEY")"
flock "$(dirname "$VPS_SSH_KEY")/.lock" \
  sh -c '[ -f "$1" ] || ssh-keygen -q -t ed25519 -N "" -C vps-test -f "$1"' sh "$VPS_SSH_KEY"
export VPS_SSH_KEY

unset _vps_env_dir _vps_nofile _vps_nproc _vps_conf
unset -f _vps_limit
