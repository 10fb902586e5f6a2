"""A deploy that stops before its handlers run (a lost connection, a ^C)
leaves its changes on disk but not in service. The next run finds nothing
left to change on disk; it must still put them in service. (This runs last:
it leaves HSTS on.)"""

from conftest import converge, converge_interrupted, platform_of

NAME = "https.vps.test"
HSTS = "apache__tls_hsts=true"
# A file Apache serves itself: its headers come from Apache's configuration only.
STATIC = "/static/notes/style.css"


def hsts_served(host):
    headers = host.check_output(
        f"curl -sS -k --max-time 30 --resolve {NAME}:443:127.0.0.1 -o /dev/null -D - https://{NAME}{STATIC}"
    )
    return "strict-transport-security:" in headers.lower()


def test_the_run_after_an_interrupted_one_puts_its_changes_in_service(host, whole_scenario):
    name = host.backend.get_hostname()
    sites = platform_of(host)["sites"]
    assert not hsts_served(host)

    # The first flush after the site is written: with an ACME certificate,
    # the one that lets mod_md read the site; otherwise the play's own.
    converge_interrupted(name, "Write the app's site with the directives of its mode", HSTS)
    assert host.run(f"grep -Rqs Strict-Transport-Security {sites}/").rc == 0, "the interrupted run wrote no HSTS"
    assert not hsts_served(host), "Apache reloaded before the interruption"

    result = converge(name, HSTS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "stopped before its handlers ran" in output
    assert hsts_served(host), output[-3000:]
