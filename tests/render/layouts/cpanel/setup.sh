#!/bin/sh
# Lays out cPanel & WHM with EasyApache 4 around Debian's Apache binary in a
# render container, with the cPanel EA4 simulation of the Molecule scenario
# cpanel-sim: its commands (molecule/cpanel-sim/files: the rebuildhttpdconf
# stand-in, the httpd and apachectl wrappers, the SIMULATION note) and its
# profile's modules (cpsim_modules in molecule/cpanel-sim/prepare.yml),
# which tests/render/test_render.py copies to cpsim/ here. root/ holds the
# account's userdata (the HTTP and the SSL vhost of its domain) and a conf.d
# file. No systemd or suexec setup: a render needs only what configtest
# reads.
# Usage: sh setup.sh <mode>
set -eu
layout=$(cd "$(dirname "$0")" && pwd)
cpsim=$layout/cpsim

rm -rf /etc/apache2 /etc/init.d/apache2
mkdir -p /etc/apache2/conf /etc/apache2/conf.modules.d /etc/apache2/conf.d/includes \
  /var/log/apache2/domlogs /var/www/html /usr/local/cpanel/scripts /etc/cpanel/ea4 /run/apache2
cp -R "$layout/root/." /
chmod 0711 /var/cpanel /var/cpanel/userdata

# The markers cpanel's `detect` entry point looks for, and the commands.
echo 11.110.0.17 > /usr/local/cpanel/version
: > /etc/cpanel/ea4/is_ea4
install -m 0644 "$cpsim/SIMULATION" /etc/cpanel/ea4/SIMULATION
install -m 0755 "$cpsim/rebuildhttpdconf.py" /usr/local/cpanel/scripts/rebuildhttpdconf
install -m 0755 "$cpsim/httpd" /usr/sbin/httpd
rm -f /usr/sbin/apachectl
install -m 0755 "$cpsim/apachectl" /usr/sbin/apachectl

# ServerRoot /etc/apache2, as EA4 links it.
ln -s /usr/lib/apache2/modules /etc/apache2/modules
ln -s /var/log/apache2 /etc/apache2/logs
ln -s /run/apache2 /etc/apache2/run
ln -s /etc/mime.types /etc/apache2/conf/mime.types
groupadd --system nobody
chown root:nobody /run/apache2
chmod 0710 /run/apache2

# The modules of the simulated EA4 profile, read from the simulation.
python3 - "$cpsim/prepare.yml" <<'PY'
import sys

import yaml

plays = yaml.safe_load(open(sys.argv[1]))
settings = next(play["vars"] for play in plays if "cpsim_modules" in (play.get("vars") or {}))
if (settings["cpsim_user"], settings["cpsim_domain"]) != ("acme", "acme.test"):
    sys.exit("molecule/cpanel-sim/prepare.yml has another account now: update tests/render/layouts/cpanel")
for module in settings["cpsim_modules"]:
    with open(f"/etc/apache2/conf.modules.d/{module['file']}.conf", "w") as conf:
        conf.write(
            f"# cPanel EA4 layout SIMULATION (render): stands for the file that {module['package']} installs.\n"
            f"LoadModule {module['module']}_module modules/mod_{module['module']}.so\n"
        )
PY

# The account, as createacct makes it.
groupadd acme
useradd --gid acme --home-dir /home/acme --shell /bin/bash acme
mkdir -p /home/acme/public_html/cgi-bin
chown acme:acme /home/acme /home/acme/public_html/cgi-bin
chown acme:nobody /home/acme/public_html
chmod 0711 /home/acme
chmod 0750 /home/acme/public_html
chown root:acme /var/cpanel/userdata/acme /var/cpanel/userdata/acme/*
chmod 0750 /var/cpanel/userdata/acme
chmod 0640 /var/cpanel/userdata/acme/*
echo 192.0.2.10 > /var/cpanel/mainip

# The server's own certificate and the domain's, self-signed, as cPanel's
# installation and AutoSSL would have put them: the SSL vhosts name them.
mkdir -p /var/cpanel/ssl/cpanel /var/cpanel/ssl/apache_tls/acme.test
for pem in /var/cpanel/ssl/cpanel/mycpanel.pem /var/cpanel/ssl/apache_tls/acme.test/combined; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=acme.test -keyout "$pem.key" -out "$pem.crt" 2>/dev/null
  cat "$pem.key" "$pem.crt" > "$pem"
  rm -f "$pem.key" "$pem.crt"
done

/usr/local/cpanel/scripts/rebuildhttpdconf
/usr/sbin/apachectl -t
