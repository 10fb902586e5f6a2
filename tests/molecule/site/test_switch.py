"""After the scenario's switch (molecule/shared/switch.yml), where every
host ran site.yml again in the mode its `switch_to` names while notes were
being written through Apache: no write failed for lack of permission, and,
on the host whose `second_app` names a mode, a second app joins beside the
switched one, first in its mode, then in that one, and neither disturbs the
other. Every other
check of the new mode is the shared one (test_site.py), run again in the
second verify."""

import json
import os
from pathlib import Path

import pytest
from conftest import APP, Site, converge, host_vars, inventory_hosts, node, platform_of, runs_as

pytestmark = pytest.mark.after_switch

COUNTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "switch"
SECOND = "secondapp"


def errors_logged(host):
    """What Apache's error logs say of the app's errors: why a write failed."""
    return host.run(
        "grep -hE 'Error|rror:|denied|readonly|unable' /var/log/apache2/*error.log /var/log/httpd/*error_log "
        "/etc/apache2/logs/*error_log 2>/dev/null | tail -n 40"
    ).stdout


def test_no_write_failed_for_lack_of_permission_during_the_switch(host):
    name = host.backend.get_hostname()
    writes = json.loads((COUNTS / f"{name}.json").read_text())
    counts = writes["counts"]
    print(
        f"{name} to {host_vars(name)['switch_to']}: writes {counts} in {writes['seconds']} s "
        f"(not answered: {writes.get('errors', {})}), "
        f"failures within {writes['failure_window']} s {writes.get('failures_utc', '')}"
    )
    assert writes["stopped_by"] == "stop_file", f"the writes ended before the switch did: {writes}"
    assert counts.get("200", 0) > 0, counts
    # Permission trouble during a switch shows as 500 (unable to open the
    # database file); the data stays usable by both users until the new
    # mode serves.
    assert counts.get("500", 0) == 0, (counts, errors_logged(host))


def runs_as_app(host, mode, app):
    """Who runs `app` in `mode`: its own user where the mode runs it as the
    app's user, otherwise Apache's."""
    platform = platform_of(host)
    user = runs_as(mode, platform)
    return app if user == platform["app_user"] else user


def answers_of(host, name, count=10):
    site = Site(host, host.check_output("mktemp -d"), name=name)
    return [site.json("/served-by/") for _ in range(count)]


def test_a_second_app_joins_in_the_same_mode_then_in_another(whole_scenario):
    names = [name for name in inventory_hosts() if host_vars(name).get("second_app")]
    if not names:
        pytest.skip("not applicable here: no host of this scenario takes a second app")
    for name in names:
        host = node(name)
        first = host_vars(name)["switch_to"]
        for mode in (first, host_vars(name)["second_app"]):
            result = converge(
                name,
                f"wsgi_deployment_mode={mode}",
                f"django__name={SECOND}",
                "django__server_name=second.test",
                '{"django__server_aliases": []}',
            )
            assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
            for answer in answers_of(host, "second.test"):
                assert answer["allowed_hosts"] == ["second.test"]
                assert answer["media_root"] == f"/srv/{SECOND}/media"
                assert answer["user"] == runs_as_app(host, mode, SECOND)
            for answer in answers_of(host, None):
                assert "vps.test" in answer["allowed_hosts"]
                assert answer["media_root"] == f"/srv/{APP}/media"
                assert answer["user"] == runs_as_app(host, first, APP)
                if first == "embedded":
                    assert answer["mod_wsgi_application_group"] == APP
            if "embedded" in (first, mode):
                conf = host.file(f"{platform_of(host)['conf']}/mod_wsgi.conf").content_string
                assert "WSGIRestrictEmbedded Off" in conf
