import hashlib
import json
import os
import platform
import re
import secrets
import uuid
from pathlib import Path

import django
import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token_from(response):
    match = CSRF_INPUT.search(response.content.decode())
    assert match, "form has no CSRF token"
    return match.group(1)


def element_text(html, element_id):
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert match, f"no element with id {element_id!r}"
    return match.group(1).strip()


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)


def test_home_page(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Django sample app" in html
    for url in ("/notes/", "/upload/", "/served-by/", "/healthz"):
        assert f'href="{url}"' in html
    assert 'href="/static/notes/style.css"' in html


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")


def test_unknown_host_is_rejected():
    response = Client(HTTP_HOST="evil.example").get("/healthz")
    assert response.status_code == 400


def test_notes_post_with_csrf_then_listed_newest_first(client):
    first, second = f"first {uuid.uuid4()}", f"second {uuid.uuid4()}"
    for text in (first, second):
        token = csrf_token_from(client.get("/notes/"))
        response = client.post("/notes/", {"text": text, "csrfmiddlewaretoken": token})
        assert response.status_code in (302, 303)
        assert response["Location"] == "/notes/"

    response = client.get("/notes/")
    assert response.status_code == 200
    html = response.content.decode()
    assert first in html and second in html
    assert html.index(second) < html.index(first)


def test_notes_post_without_csrf_is_forbidden(client):
    from notes.models import Note

    text = f"no token {uuid.uuid4()}"
    response = client.post("/notes/", {"text": text})
    assert response.status_code == 403
    assert not Note.objects.filter(text=text).exists()


def test_notes_post_invalid_form_is_not_stored(client):
    from notes.models import Note

    before = Note.objects.count()
    token = csrf_token_from(client.get("/notes/"))
    response = client.post("/notes/", {"text": "", "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert Note.objects.count() == before


def test_upload_stores_file_and_reports_digest(client):
    get = client.get("/upload/")
    assert get.status_code == 200
    assert 'name="file"' in get.content.decode()

    content = secrets.token_bytes(70_000) + "\nnon-ascii: é\n".encode()
    upload = SimpleUploadedFile("hello.bin", content)
    response = client.post("/upload/", {"file": upload, "csrfmiddlewaretoken": csrf_token_from(get)})
    assert response.status_code == 200
    html = response.content.decode()

    name = element_text(html, "upload-name")
    assert element_text(html, "upload-size") == str(len(content))
    assert element_text(html, "upload-sha256") == hashlib.sha256(content).hexdigest()

    stored = Path(settings.MEDIA_ROOT) / name
    assert stored.is_file()
    assert stored.read_bytes() == content
    assert Path(os.environ["DJANGO_MEDIA_ROOT"]) in stored.parents


def test_upload_without_csrf_is_forbidden(client):
    upload = SimpleUploadedFile("nope.txt", b"nope")
    assert client.post("/upload/", {"file": upload}).status_code == 403


def test_served_by_reports_environment(client):
    response = client.get("/served-by/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)

    assert set(data) == {
        "gateway_interface",
        "wsgi_multithread",
        "wsgi_multiprocess",
        "wsgi_run_once",
        "mod_wsgi_process_group",
        "mod_wsgi_application_group",
        "server_software",
        "url_scheme",
        "is_secure",
        "wsgate_front_end",
        "wsgate_relay_backend",
        "authorization_sha256",
        "allowed_hosts",
        "media_root",
        "cwd",
        "pid",
        "process_name",
        "process_title",
        "ppid",
        "parent_process_name",
        "python_version",
        "django_version",
        "uid",
        "user",
        "hostname",
    }
    for key in ("wsgi_multithread", "wsgi_multiprocess", "wsgi_run_once"):
        assert isinstance(data[key], bool)
    # The test client is not mod_wsgi or wsgate.
    assert data["mod_wsgi_process_group"] is None
    assert data["mod_wsgi_application_group"] is None
    assert data["wsgate_front_end"] is None
    assert data["wsgate_relay_backend"] is None
    assert data["authorization_sha256"] is None
    assert data["cwd"] == os.getcwd()
    assert data["pid"] == os.getpid()
    assert data["ppid"] == os.getppid()
    assert data["uid"] == os.getuid()
    assert isinstance(data["user"], str)
    assert data["hostname"] == platform.node()
    assert data["python_version"] == platform.python_version()
    assert data["django_version"] == django.get_version()
    if Path("/proc/self/comm").exists():
        assert isinstance(data["process_name"], str) and data["process_name"]
        assert isinstance(data["parent_process_name"], str)
        assert data["process_title"] == Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode().strip()


def test_served_by_proves_the_authorization_header_arrived(client):
    data = json.loads(client.get("/served-by/", HTTP_AUTHORIZATION="Bearer abc").content)
    assert data["authorization_sha256"] == hashlib.sha256(b"Bearer abc").hexdigest()


def test_served_by_reads_wsgi_environ(client):
    response = client.get(
        "/served-by/",
        **{
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "Apache/2.4",
            "mod_wsgi.process_group": "sampleapp",
            "mod_wsgi.application_group": "",
            "wsgi.multithread": True,
        },
    )
    data = json.loads(response.content)
    assert data["gateway_interface"] == "CGI/1.1"
    assert data["server_software"] == "Apache/2.4"
    assert data["mod_wsgi_process_group"] == "sampleapp"
    assert data["mod_wsgi_application_group"] == ""
    assert data["wsgi_multithread"] is True


def test_served_by_reports_the_scheme(client):
    plain = json.loads(client.get("/served-by/").content)
    assert (plain["url_scheme"], plain["is_secure"]) == ("http", False)
    secure = json.loads(client.get("/served-by/", secure=True).content)
    assert (secure["url_scheme"], secure["is_secure"]) == ("https", True)


def test_static_css_is_found_and_collected():
    css = finders.find("notes/style.css")
    assert css and "/* sample-app-css */" in Path(css).read_text()

    call_command("collectstatic", interactive=False, verbosity=0)
    collected = Path(settings.STATIC_ROOT) / "notes" / "style.css"
    assert "/* sample-app-css */" in collected.read_text()


def test_migrations_are_complete():
    call_command("makemigrations", check=True, dry_run=True, verbosity=0)


def test_check_deploy_passes_without_ssl():
    assert settings.DEBUG is False
    call_command("check", deploy=True, fail_level="WARNING")


def test_missing_secret_key_is_improperly_configured(run_app_python):
    result = run_app_python("import django; django.setup()")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


DUMP_SETTINGS = """
import json
import django
from django.conf import settings
django.setup()
print(json.dumps({name: getattr(settings, name) for name in %r}, default=str))
"""


def dump_settings(run_app_python, names, **env):
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    result = run_app_python(DUMP_SETTINGS % (names,), **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


DEPLOY_SETTINGS = [
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "STATIC_URL",
    "MEDIA_URL",
    "STATIC_ROOT",
    "MEDIA_ROOT",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SILENCED_SYSTEM_CHECKS",
]


def test_settings_defaults(run_app_python, app_dir):
    values = dump_settings(
        run_app_python,
        DEPLOY_SETTINGS,
    )
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == []
    assert values["CSRF_TRUSTED_ORIGINS"] == []
    assert values["STATIC_URL"] == "/static/"
    assert values["MEDIA_URL"] == "/media/"
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert sorted(values["SILENCED_SYSTEM_CHECKS"]) == [
        "security.W004",
        "security.W008",
        "security.W012",
        "security.W016",
    ]


def test_settings_from_environment(run_app_python, tmp_path):
    values = dump_settings(
        run_app_python,
        DEPLOY_SETTINGS,
        DJANGO_DEBUG="Yes",
        DJANGO_ALLOWED_HOSTS="example.com, www.example.com,",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://example.com,https://www.example.com",
        DJANGO_STATIC_URL="/assets/",
        DJANGO_MEDIA_URL="/uploads/",
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        DJANGO_MEDIA_ROOT=str(tmp_path / "media"),
        DJANGO_SECURE_SSL="on",
        DJANGO_SECURE_HSTS_SECONDS="31536000",
    )
    assert values["DEBUG"] is True
    assert values["ALLOWED_HOSTS"] == ["example.com", "www.example.com"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://example.com", "https://www.example.com"]
    assert values["STATIC_URL"] == "/assets/"
    assert values["MEDIA_URL"] == "/uploads/"
    assert values["STATIC_ROOT"] == str(tmp_path / "static")
    assert values["MEDIA_ROOT"] == str(tmp_path / "media")
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert sorted(values["SILENCED_SYSTEM_CHECKS"]) == ["security.W005", "security.W021"]


def test_https_without_hsts_until_opted_in(run_app_python):
    values = dump_settings(run_app_python, DEPLOY_SETTINGS, DJANGO_SECURE_SSL="1")
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert sorted(values["SILENCED_SYSTEM_CHECKS"]) == ["security.W004", "security.W005", "security.W021"]


def test_check_deploy_passes_with_ssl(run_app_python):
    code = (
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('check', deploy=True, fail_level='WARNING')"
    )
    result = run_app_python(
        code, DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_SECURE_SSL="on", DJANGO_ALLOWED_HOSTS="example.com"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "nonsense"])
def test_debug_is_off_unless_explicitly_enabled(run_app_python, value):
    assert dump_settings(run_app_python, ["DEBUG"], DJANGO_DEBUG=value)["DEBUG"] is False


def test_db_path_from_environment(run_app_python, tmp_path):
    db = tmp_path / "data" / "app.sqlite3"
    values = dump_settings(run_app_python, ["DATABASES"], DJANGO_DB_PATH=str(db))
    assert values["DATABASES"]["default"]["NAME"] == str(db)


def test_database_url_names_sqlite_by_its_absolute_path(run_app_python, tmp_path):
    db = tmp_path / "data" / "app.sqlite3"
    values = dump_settings(run_app_python, ["DATABASES"], DATABASE_URL=f"sqlite:///{db}", DJANGO_DB_PATH="/ignored")
    assert values["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert values["DATABASES"]["default"]["NAME"] == str(db)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_database_url_for_postgresql(scheme):
    from sampleapp.settings import database_from_url

    url = f"{scheme}://app%40x:p%2Fss@db.example:6543/app_db?sslmode=require&connect_timeout=5"
    assert database_from_url(url) == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app_db",
        "USER": "app@x",
        "PASSWORD": "p/ss",
        "HOST": "db.example",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require", "connect_timeout": "5"},
    }


def test_database_url_without_password_leaves_it_to_libpq():
    from sampleapp.settings import database_from_url

    default = database_from_url("postgres://sampleapp@10.0.0.5/sampleapp")
    assert (default["USER"], default["PASSWORD"], default["HOST"], default["PORT"]) == ("sampleapp", "", "10.0.0.5", "")


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://u@h/db", "unknown scheme 'mysql'"), ("sqlite:///relative.db", "absolute path")],
)
def test_database_url_refusals_name_the_variable(run_app_python, url, message):
    result = run_app_python(
        "import django; django.setup()", DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DATABASE_URL=url
    )
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr and message in result.stderr, result.stderr


def test_login_session_is_kept_in_the_database(client):
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.models import Session

    password = secrets.token_urlsafe(16)
    get_user_model().objects.create_user(f"visitor-{uuid.uuid4().hex[:8]}", password=password)
    user = get_user_model().objects.latest("id")
    assert json.loads(client.get("/whoami/").content)["user"] is None
    token = csrf_token_from(client.get("/login/"))
    response = client.post("/login/", {"username": user.username, "password": password, "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/whoami/"
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert Session.objects.filter(session_key=session_key).exists()
    # Another client that presents the same cookie is the same visitor:
    # what another app host sees, since it reads the same database.
    other = Client()
    other.cookies[settings.SESSION_COOKIE_NAME] = session_key
    data = json.loads(other.get("/whoami/").content)
    assert data == {"user": user.username, "hostname": platform.node()}


def test_login_with_a_wrong_password_is_refused(client):
    token = csrf_token_from(client.get("/login/"))
    response = client.post("/login/", {"username": "nobody", "password": "wrong", "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert json.loads(client.get("/whoami/").content)["user"] is None
