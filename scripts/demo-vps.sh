#!/usr/bin/env bash
# The throwaway VPS behind `make demo`: a systemd container with its web
# port, its HTTPS port and its sshd published on 127.0.0.1. Ansible reaches
# it over SSH, as it reaches a real VPS, with the checkout's key
# (scripts/env.sh makes it). The HTTPS port is the same inside and out, so
# the site's redirect to it works from both sides.
#   demo-vps.sh up NAME IMAGE WEB_PORT SSH_PORT [TLS_PORT]
#   demo-vps.sh down NAME
set -euo pipefail

action=${1:?usage: demo-vps.sh up NAME IMAGE WEB_PORT SSH_PORT [TLS_PORT] | down NAME}
name=${2:?container name}

case "$action" in
  up)
    image=${3:?image} port=${4:?web port} ssh_port=${5:?ssh port} tls_port=${6:-}
    tls_publish=()
    [ -z "$tls_port" ] || tls_publish=(-p "127.0.0.1:$tls_port:$tls_port")
    if podman container exists "$name"; then
      if [ "$(podman inspect -f '{{.ImageName}}' "$name")" != "$image" ] \
        || ! podman port "$name" 22 2>/dev/null | grep -q ":$ssh_port\$" \
        || { [ -n "$tls_port" ] && ! podman port "$name" "$tls_port" 2>/dev/null | grep -q ":$tls_port\$"; }; then
        echo "==> $name runs another image or lacks SSH port $ssh_port or HTTPS port ${tls_port:-none}; make demo-clean first" >&2
        exit 1
      fi
      podman start "$name" >/dev/null
      echo "==> reusing the demo VPS container $name"
    else
      echo "==> starting the demo VPS container $name ($image, 127.0.0.1:$port -> 80, 127.0.0.1:$ssh_port -> 22${tls_port:+, 127.0.0.1:$tls_port -> $tls_port})"
      podman run -d --name "$name" --hostname "$name" --systemd=always \
        -p "127.0.0.1:$port:80" -p "127.0.0.1:$ssh_port:22" "${tls_publish[@]}" "$image" /lib/systemd/systemd >/dev/null
    fi
    for _ in $(seq 60); do
      state=$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)
      case "$state" in running|degraded) break ;; esac
      sleep 1
    done
    case "$state" in
      running|degraded) ;;
      *) echo "==> systemd in $name did not come up (state: ${state:-unknown})" >&2; exit 1 ;;
    esac
    podman exec -i "$name" sh -c 'umask 077; mkdir -p /root/.ssh; cat > /root/.ssh/authorized_keys' < "$VPS_SSH_KEY.pub"
    for _ in $(seq 30); do
      if ssh -q -i "$VPS_SSH_KEY" -p "$ssh_port" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 root@127.0.0.1 true; then
        exit 0
      fi
      sleep 1
    done
    echo "==> sshd in $name does not answer on 127.0.0.1:$ssh_port" >&2
    exit 1
    ;;
  down)
    if podman container exists "$name"; then
      podman rm -f "$name" >/dev/null
      echo "==> removed $name"
    else
      echo "==> $name does not exist"
    fi
    ;;
  *)
    echo "unknown action: $action" >&2
    exit 2
    ;;
esac
