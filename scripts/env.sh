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
sed -e "s/@NOFILE@/$_vps_nofile/g" -e "s/@NPROC@/$_vps_nproc/g" \
  "$_vps_env_dir/containers.conf.in" > "$VPS_REPO_ROOT/.cache/containers.conf.tmp.$$" \
  && mv -f "$VPS_REPO_ROOT/.cache/containers.conf.tmp.$$" "$VPS_REPO_ROOT/.cache/containers.conf"

export CONTAINERS_CONF="$VPS_REPO_ROOT/.cache/containers.conf"

# The key Ansible logs in to the test and demo containers with, made once
# per checkout.
VPS_SSH_KEY="$VPS_REPO_ROOT/.cache/ssh/id_ed25519"
if [ ! -f "$VPS_SSH_KEY" ]; then
  mkdir -p "$(dirname "$VPS_SSH_KEY")"
  ssh-keygen -q -t ed25519 -N '' -C vps-test -f "$VPS_SSH_KEY"
fi
export VPS_SSH_KEY

unset _vps_env_dir _vps_nofile _vps_nproc
unset -f _vps_limit
