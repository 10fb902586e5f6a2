#!/bin/sh
# Lays out an EL host's Apache (httpd package) around Debian's Apache binary
# in a render container: tests/render/test_render.py copies this layout
# directory into the container and runs `sh setup.sh <mode>` before the
# roles run. root/ holds stand-ins for the httpd package's files, packages/
# those of the module packages a mode installs (python3-mod_wsgi for
# embedded and daemon, mod_fcgid for fcgid). Shared by el7 and el9, whose
# root/ and packages/ differ.
set -eu
mode=$1
layout=$(cd "$(dirname "$0")" && pwd)

# mime_magic's data file, which httpd.conf points at (conf/magic); then no
# trace of Debian's layout is left.
mkdir -p /etc/httpd/conf
cp /etc/apache2/magic /etc/httpd/conf/magic
rm -rf /etc/apache2 /etc/init.d/apache2
cp -R "$layout/root/." /
rm -f /etc/httpd/conf.d/.keep

# The user and directories of EL's httpd package.
groupadd --system apache
useradd --system --gid apache --home-dir /usr/share/httpd --shell /sbin/nologin apache
mkdir -p /var/log/httpd /run/httpd /var/www/html /var/www/cgi-bin /etc/httpd/modules
chmod 0700 /var/log/httpd
chown root:apache /run/httpd
chmod 0710 /run/httpd
ln -s /var/log/httpd /etc/httpd/logs
ln -s /run/httpd /etc/httpd/run

# /etc/httpd/modules: the httpd package's modules, Debian's builds of them.
# mod_fcgid and mod_wsgi come from packages of their own (below).
for so in /usr/lib/apache2/modules/mod_*.so; do
  case ${so##*/} in
    mod_fcgid.so|mod_wsgi.so) ;;
    *) ln -s "$so" /etc/httpd/modules/ ;;
  esac
done

case $mode in
  embedded|daemon)
    cp -R "$layout/packages/python3-mod_wsgi/." /
    ln -s /usr/lib/apache2/modules/mod_wsgi.so /etc/httpd/modules/mod_wsgi_python3.so
    ;;
  fcgid)
    cp -R "$layout/packages/mod_fcgid/." /
    ln -s /usr/lib/apache2/modules/mod_fcgid.so /etc/httpd/modules/mod_fcgid.so
    mkdir -p /run/mod_fcgid
    ;;
esac

# EL's apachectl and httpd: the server with ServerRoot /etc/httpd. Debian's
# apachectl (a link to apache2ctl) reads Debian's layout, so it goes.
rm -f /usr/sbin/apachectl /usr/sbin/httpd
cat > /usr/sbin/httpd <<'SH'
#!/bin/sh
# Render stand-in for EL's /usr/sbin/httpd: Debian's Apache binary with EL's
# ServerRoot and configuration file.
exec /usr/sbin/apache2 -d /etc/httpd -f conf/httpd.conf "$@"
SH
cat > /usr/sbin/apachectl <<'SH'
#!/bin/sh
# Render stand-in for EL's /usr/sbin/apachectl: configtest is httpd -t,
# every other argument goes to httpd.
case "${1:-}" in
  configtest) shift; exec /usr/sbin/httpd -t "$@" ;;
  *) exec /usr/sbin/httpd "$@" ;;
esac
SH
chmod 0755 /usr/sbin/httpd /usr/sbin/apachectl

/usr/sbin/apachectl -t
