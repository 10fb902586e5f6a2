#!/usr/bin/env bash
# The throwaway VPS behind `make demo`: a systemd container with its web
# port and its sshd published on 127.0.0.1. Ansible reaches it over SSH, as
# it reaches a real VPS, with the checkout's key (scripts/env.sh makes it).
#   demo-vps.sh up NAME IMAGE WEB_PORT SSH_PORT
#   demo-vps.sh down NAME
set -euo pipefail

action=${1:?usage: demo-vps.sh up NAME IMAGE WEB_PORT SSH_PORT | down NAME}
name=${2:?container name}

case "$action" in
  up)
    image=${3:?image} port=${4:?web port} ssh_port=${5:?ssh port}
    if podman container exists "$name"; then
      if [ "$(podman inspect -f '{{.ImageName}}' "$name")" != "$image" ] \
        || ! podman port "$name" 22 2>/dev/null | grep -q ":$ssh_port\$"; then
        echo "==> $name runs another image or has no SSH port $ssh_port; make demo-clean first" >&2
        exit 1
      fi
      podman start "$name" >/dev/null
      echo "==> reusing the demo VPS container $name"
    else
      echo "==> starting the demo VPS container $name ($image, 127.0.0.1:$port -> 80, 127.0.0.1:$ssh_port -> 22)"
      podman run -d --name "$name" --hostname "$name" --systemd=always \
        -p "127.0.0.1:$port:80" -p "127.0.0.1:$ssh_port:22" "$image" /lib/systemd/systemd >/dev/null
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
