#!/usr/bin/env python3
"""The deploy's helper on the host: every step that must see the app the way
it runs goes through here, so the secret reaches the app from a file and is
never on a command line or in Ansible's output.

    djtool.py --env FILE [--secret [NAME=]FILE]... [--set KEY=VALUE]... COMMAND

Commands:
    exec -- PROGRAM ARGS...   run PROGRAM in that environment
    settings                  print the app's effective static and media settings (JSON)
    check [--silence ID]...   manage.py check --deploy at WARNING, minus the silenced ids
    smoke --host H --path P   one GET through the app's WSGI callable, in process (JSON)

settings, check and smoke run under the release's Python, in its code
directory; exec needs only the standard library. Whether Apache then serves
the site is served.py's to say, which root runs with the host's Python.
"""

import argparse
import io
import json
import os
import re
import sys
import urllib.parse

SECRET_NAME = "DJANGO_SECRET_KEY"
NAMED_SECRET = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.+)$")


def load_environment(env_file, secret_files, overrides):
    if env_file:
        with open(env_file, encoding="utf-8") as env:
            for line in env:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, value = line.split("=", 1)
                    os.environ[key] = value
    for item in secret_files:
        named = NAMED_SECRET.match(item)
        name, path = named.groups() if named else (SECRET_NAME, item)
        with open(path, encoding="utf-8") as secret:
            os.environ[name] = secret.read().strip()
    for item in overrides:
        key, _, value = item.partition("=")
        os.environ[key] = value


def setup_django():
    sys.path.insert(0, os.getcwd())
    import django

    django.setup()


def command_exec(args):
    if not args.program:
        sys.exit("exec needs a program")
    program = args.program[1:] if args.program[0] == "--" else args.program
    os.execvp(program[0], program)


def command_settings(args):
    setup_django()
    from django.conf import settings

    def text(value):
        return "" if value is None else str(value)

    print(
        json.dumps(
            {
                "STATIC_ROOT": text(settings.STATIC_ROOT),
                "STATIC_URL": text(settings.STATIC_URL),
                "MEDIA_ROOT": text(settings.MEDIA_ROOT),
                "MEDIA_URL": text(settings.MEDIA_URL),
            }
        )
    )


def command_check(args):
    setup_django()
    from django.core import checks

    silenced = set(args.silence)
    found = [
        message
        for message in checks.run_checks(include_deployment_checks=True)
        if message.level >= checks.WARNING and message.id not in silenced and not message.is_silenced()
    ]
    for message in found:
        print(f"{message.id}: {message.msg}" + (f" HINT: {message.hint}" if message.hint else ""))
    sys.exit(1 if found else 0)


def static_references(body, static_url):
    if not static_url.startswith("/"):
        return []
    pattern = r"""(?:href|src)=["'](%s[^"'?#]+)""" % re.escape(static_url)
    return re.findall(pattern, body)


def command_smoke(args):
    setup_django()
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    scheme = "http"
    for _ in range(3):
        status, headers, body = call_wsgi(application, args.host, args.path, scheme)
        location = headers.get("location", "")
        if status.startswith("3") and location.startswith("https://") and scheme == "http":
            scheme = "https"
            continue
        break
    result = {"status": int(status.split()[0]), "scheme": scheme, "location": location, "asset": ""}
    static_url = str(settings.STATIC_URL or "")
    for reference in static_references(body.decode("utf-8", "replace"), static_url):
        relative = urllib.parse.unquote(reference[len(static_url) :])
        result["asset"] = reference
        result["asset_file"] = os.path.join(str(settings.STATIC_ROOT or ""), relative)
        result["asset_exists"] = bool(settings.STATIC_ROOT) and os.path.isfile(result["asset_file"])
        break
    print(json.dumps(result))
    sys.exit(0 if 200 <= result["status"] < 300 else 1)


def call_wsgi(application, host, path, scheme):
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": "443" if scheme == "https" else "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": True,
    }
    if scheme == "https":
        environ["HTTPS"] = "on"
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = status
        started["headers"] = {name.lower(): value for name, value in headers}

    chunks = application(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return started["status"], started["headers"], body


def parser():
    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    top.add_argument("--env", help="KEY=VALUE file loaded into the environment")
    top.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="[NAME=]FILE",
        help=f"a file whose content becomes the variable NAME ({SECRET_NAME} without one)",
    )
    top.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    commands = top.add_subparsers(dest="command")
    commands.required = True  # a keyword only from Python 3.7
    run = commands.add_parser("exec")
    run.add_argument("program", nargs=argparse.REMAINDER)
    run.set_defaults(handler=command_exec)
    commands.add_parser("settings").set_defaults(handler=command_settings)
    check = commands.add_parser("check")
    check.add_argument("--silence", action="append", default=[], metavar="ID")
    check.set_defaults(handler=command_check)
    smoke = commands.add_parser("smoke")
    smoke.add_argument("--host", required=True)
    smoke.add_argument("--path", default="/")
    smoke.set_defaults(handler=command_smoke)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    load_environment(args.env, args.secret, args.set)
    args.handler(args)


if __name__ == "__main__":
    main()
