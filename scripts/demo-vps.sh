#!/usr/bin/env bash
# The throwaway VPS behind `make demo`: a systemd container with port 80
# published on 127.0.0.1.
#   demo-vps.sh up NAME IMAGE PORT
#   demo-vps.sh down NAME
set -euo pipefail

action=${1:?usage: demo-vps.sh up NAME IMAGE PORT | down NAME}
name=${2:?container name}

case "$action" in
  up)
    image=${3:?image} port=${4:?host port}
    if podman container exists "$name"; then
      if [ "$(podman inspect -f '{{.ImageName}}' "$name")" != "$image" ]; then
        echo "==> $name runs another image; make demo-clean first" >&2
        exit 1
      fi
      podman start "$name" >/dev/null
      echo "==> reusing the demo VPS container $name"
    else
      echo "==> starting the demo VPS container $name ($image, 127.0.0.1:$port -> 80)"
      podman run -d --name "$name" --hostname "$name" --systemd=always \
        -p "127.0.0.1:$port:80" "$image" /lib/systemd/systemd >/dev/null
    fi
    for _ in $(seq 60); do
      state=$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)
      case "$state" in running|degraded) exit 0 ;; esac
      sleep 1
    done
    echo "==> systemd in $name did not come up (state: ${state:-unknown})" >&2
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
