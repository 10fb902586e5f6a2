#!/usr/bin/env bash
# Build an image the tests start many containers of, with its packages
# installed once rather than in every container: the local Debian 12 image
# (scripts/build-image.sh 12) and Debian's packages.
#
#   scripts/tool-image.sh render  -> localhost/vps-render:12, where tests/render
#       runs the roles: Debian's Apache, its mod_fcgid, mod_wsgi and suexec,
#       and what the platform stand-ins need (python3-yaml for the cPanel
#       rebuildhttpdconf stand-in, media-types for /etc/mime.types)
#   scripts/tool-image.sh cpsim   -> localhost/vps-cpsim:12, the cPanel EA4
#       SIMULATION's hosts (molecule/cpanel-sim): Apache's binary without
#       Debian's layout, both profiles' identity switches (mpm-itk, a suexec
#       with a configurable document root), apxs and the compiler a pip build
#       of mod_wsgi takes, the Python packages an account's admin provides.
#       Its prepare step and the roles install what a host still lacks.
#
# Nothing is pulled from a registry: the base image is local and the packages
# come from Debian's archive through apt. The build is skipped when the image
# carries the same recipe hash (this script + the base image's id); FORCE=1
# rebuilds. Source scripts/env.sh first, or let this script do it.

set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
BASE=${VPS_TOOL_BASE:-localhost/vps-debian:12}
case "${1:-}" in
  render)
    IMAGE=localhost/vps-render:12
    PACKAGES="apache2 apache2-suexec-custom libapache2-mod-fcgid libapache2-mod-wsgi-py3 media-types python3 python3-yaml"
    # The package scripts enable mod_fcgid and mod_wsgi; they are disabled
    # again so that each render loads only what its mode asks for.
    AFTER="a2dismod -q fcgid wsgi && apache2ctl -t"
    ;;
  cpsim)
    IMAGE=localhost/vps-cpsim:12
    PACKAGES="apache2-bin apache2-dev apache2-suexec-custom libapache2-mpm-itk media-types openssl acl \
      python3 python3-dev python3-yaml python3-venv python3-packaging gcc"
    AFTER="test ! -e /etc/apache2/apache2.conf"
    ;;
  *) echo "usage: $0 render|cpsim" >&2; exit 2 ;;
esac

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/env.sh
[ -n "${CONTAINERS_CONF:-}" ] || . "$SCRIPT_DIR/env.sh"

podman image exists "$BASE" || die "the base image $BASE is missing: run scripts/build-image.sh 12 (make images)"
BASE_ID=$(podman image inspect --format '{{.Id}}' "$BASE")
RECIPE_HASH=$({ cat "$SCRIPT_PATH"; echo "image=$IMAGE base=$BASE_ID"; } | sha256sum | cut -d' ' -f1)

if [ "${FORCE:-0}" != 1 ] && podman image exists "$IMAGE"; then
  current=$(podman image inspect --format '{{ index .Labels "org.vps.tool-recipe" }}' "$IMAGE" 2>/dev/null || true)
  if [ "$current" = "$RECIPE_HASH" ]; then
    log "$IMAGE is up to date (recipe ${RECIPE_HASH:0:12}); nothing to do"
    exit 0
  fi
fi

log "building $IMAGE from $BASE ..."
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
# policy-rc.d keeps the packages' scripts from starting Apache during the
# build.
cat > "$CONTEXT/Containerfile" <<EOF
FROM $BASE
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \\
 && apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES \\
 && $AFTER \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* && mkdir -p /var/lib/apt/lists/partial \\
 && rm -f /usr/sbin/policy-rc.d
CMD ["sleep", "infinity"]
LABEL org.vps.tool-recipe=$RECIPE_HASH
EOF
podman build --pull=never --quiet -t "$IMAGE" "$CONTEXT" >/dev/null || die "podman build of $IMAGE failed"
log "built $IMAGE (recipe ${RECIPE_HASH:0:12})"
