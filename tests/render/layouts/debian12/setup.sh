#!/bin/sh
# The Debian 12 render uses the image's own Debian layout (the apache2
# package, scripts/tool-image.sh render), with mod_fcgid and mod_wsgi installed
# but not enabled: the roles enable what the mode needs. Nothing to lay out;
# this only checks that the layout is Debian's.
set -eu
test -f /etc/apache2/apache2.conf
test ! -e /etc/apache2/mods-enabled/wsgi.load
test ! -e /etc/apache2/mods-enabled/fcgid.load
apache2ctl -t
