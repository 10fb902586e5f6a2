import io

from hypothesis import given, settings
from hypothesis import strategies as st

from wsgate.environ import LimitedInput, add_wsgi_keys, fix_paths


def fixed(mount=None, proxy=False, **env):
    fix_paths(env, mount, whole_path_in_script_name=proxy)
    return env["SCRIPT_NAME"], env["PATH_INFO"]


def test_proxypass_whole_path_in_script_name():
    assert fixed(proxy=True, SCRIPT_NAME="/app/a b", REQUEST_URI="/app/a%20b") == ("", "/app/a b")


def test_proxypass_with_mount_prefix():
    assert fixed("/app", True, SCRIPT_NAME="/app/a b", REQUEST_URI="/app/a%20b?x=%2F") == ("/app", "/a b")
    assert fixed("/app", True, SCRIPT_NAME="/other", REQUEST_URI="/other") == ("", "/other")
    assert fixed("/app", True, SCRIPT_NAME="/application", REQUEST_URI="/application") == ("", "/application")


def test_pathinfo_given():
    assert fixed(SCRIPT_NAME="/cgi-bin/a.cgi", PATH_INFO="/p", REQUEST_URI="/cgi-bin/a.cgi/p?q") == (
        "/cgi-bin/a.cgi",
        "/p",
    )
    assert fixed(SCRIPT_NAME="/a.fcgi", PATH_INFO="/p", REQUEST_URI="/sub/p") == ("/sub", "/p")


def test_cgi_script_without_path_info_keeps_script_name():
    assert fixed(SCRIPT_NAME="/cgi-bin/a.cgi", REQUEST_URI="/cgi-bin/a.cgi") == ("/cgi-bin/a.cgi", "")


def test_absolute_form_request_uri():
    assert fixed("/app", REQUEST_URI="http://h/app/x") == ("/app", "/x")


@settings(max_examples=100, deadline=1000)
@given(st.text(alphabet="/abc %2F", max_size=30))
def test_fix_paths_never_fails(path):
    env = {"SCRIPT_NAME": path, "REQUEST_URI": path}
    fix_paths(env, "/a", True)
    assert isinstance(env["PATH_INFO"], str)


def test_limited_input():
    stream = LimitedInput(io.BytesIO(b"line1\nline2\nrest-and-beyond"), 15)
    assert stream.readline() == b"line1\n"
    assert list(stream) == [b"line2\n", b"res"]
    assert stream.read() == b""
    stream = LimitedInput(io.BytesIO(b"abcdef"), 4)
    assert stream.read(2) == b"ab" and stream.read(10) == b"cd" and stream.read(1) == b""
    assert LimitedInput(io.BytesIO(b"a\nb\n"), 4).readlines() == [b"a\n", b"b\n"]


@settings(max_examples=300, deadline=1000)
@given(st.binary(max_size=40))
def test_unquote_matches_urllib(data):
    from urllib.parse import unquote_to_bytes as reference

    from wsgate.environ import unquote_to_bytes

    assert unquote_to_bytes(data) == reference(data)


def scheme_of(**env):
    add_wsgi_keys(env, io.BytesIO(), io.StringIO(), False, True, True, "cgi")
    return env["wsgi.url_scheme"], env["SERVER_PORT"]


def test_https_from_apache_becomes_the_url_scheme():
    # mod_ssl sets HTTPS=on for CGI, mod_fcgid and mod_proxy_fcgi alike.
    assert scheme_of(HTTPS="on", SERVER_PORT="443") == ("https", "443")
    assert scheme_of(HTTPS="ON") == ("https", "443")
    assert scheme_of(REQUEST_SCHEME="https", SERVER_PORT="8443") == ("https", "8443")


def test_plain_http_stays_http():
    assert scheme_of(SERVER_PORT="80") == ("http", "80")
    assert scheme_of(HTTPS="off") == ("http", "80")
    assert scheme_of(HTTPS="") == ("http", "80")
