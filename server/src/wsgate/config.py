"""Command-line and WSGATE_* environment options for every subcommand.

Parsing is done here without argparse so that `wsgate relay` stays cheap
to start: it runs once per request as a CGI program.
"""

import posix
import sys

ENV_PREFIX = "WSGATE_"
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


class UsageError(Exception):
    """Bad command line or environment; the CLI exits with status 2."""


def _int(minimum):
    def convert(text):
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise ValueError("expected an integer >= %d" % minimum)
        return value

    convert.kind = "integer >= %d" % minimum
    return convert


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError("expected a number of seconds >= 0")
    return value


_seconds.kind = "seconds"


def _size(text):
    units = {"": 1, "K": KIB, "M": MIB, "G": GIB}
    body = text.strip().upper()
    if body.endswith("IB"):
        body = body[:-2]
    elif body.endswith("B") and body[:-1][-1:].isalpha():
        body = body[:-1]
    unit = body[-1:] if body[-1:] in ("K", "M", "G") else ""
    number = body[: len(body) - len(unit)]
    if not number.isdigit():
        raise ValueError("expected a byte count such as 1048576, 512K, 100M or 1G")
    return int(number) * units[unit]


_size.kind = "bytes (suffix K, M or G allowed)"


def _octal(text):
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise ValueError("expected an octal file mode such as 660")
    return value


_octal.kind = "octal mode"


def _text(text):
    if not text:
        raise ValueError("expected a non-empty value")
    return text


_text.kind = "text"


def _app_spec(text):
    module, _, attr = text.partition(":")
    parts = module.split(".") + (attr.split(".") if attr else [])
    if not module or not all(p.isidentifier() for p in parts):
        raise ValueError("expected MODULE:CALLABLE, e.g. mysite.wsgi:application")
    return text


_app_spec.kind = "MODULE:CALLABLE"


def _mount_prefix(text):
    if text and not text.startswith("/"):
        raise ValueError("expected an URL path starting with '/', e.g. /app")
    return text.rstrip("/")


_mount_prefix.kind = "URL path"


def _bind(text):
    if text == "systemd":
        return ("systemd",)
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest:
        return ("unix", rest)
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if host and port.isdigit() and 0 < int(port) < 65536:
            return ("tcp", host, int(port))
    raise ValueError("expected unix:/path/to/socket, tcp:HOST:PORT or systemd")


_bind.kind = "address"


def _front_end(text):
    if text not in ("fastcgi", "relay"):
        raise ValueError("expected fastcgi or relay")
    return text


_front_end.kind = "front end"


def _level(text):
    from . import log

    if text not in log.LEVELS:
        raise ValueError("expected one of %s" % ", ".join(log.LEVELS))
    return text


_level.kind = "level"


class Option:
    __slots__ = ("convert", "default", "help", "metavar", "multiple", "name")

    def __init__(self, name, convert, default, help, metavar=None, multiple=False):
        self.name = name
        self.convert = convert
        self.default = default
        self.help = help
        self.metavar = metavar or name.split("-")[-1].upper()
        self.multiple = multiple

    @property
    def flag(self):
        return "--" + self.name

    @property
    def env(self):
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    @property
    def attr(self):
        return self.name.replace("-", "_")

    def but(self, **changes):
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Option(**fields)


APP_OPTIONS = [
    Option(
        "app",
        _app_spec,
        None,
        "WSGI application as MODULE:CALLABLE (CALLABLE defaults to --callable).",
        "MODULE:CALLABLE",
    ),
    Option(
        "app-file",
        _text,
        None,
        "load the application from this Python file (any extension, e.g. .wsgi or .fcgi) instead of --app.",
        "PATH",
    ),
    Option(
        "callable",
        _text,
        "application",
        "name of the WSGI callable in --app-file or in an --app without ':CALLABLE'.",
        "NAME",
    ),
    Option(
        "python-path",
        _text,
        [],
        "directory prepended to sys.path; repeatable (in the environment variable, separate entries with ':').",
        "DIR",
        multiple=True,
    ),
    Option("chdir", _text, None, "change to this directory before loading the application.", "DIR"),
]

REQUEST_OPTIONS = [
    Option(
        "mount-prefix",
        _mount_prefix,
        None,
        "URL path the application is mounted at: "
        "SCRIPT_NAME becomes this prefix and PATH_INFO the rest of the decoded "
        "REQUEST_URI path. Use it behind 'ProxyPass /app ...'.",
        "PATH",
    ),
    Option(
        "max-body",
        _size,
        GIB,
        "largest request body accepted; larger ones get "
        "413 without running the application (default 1G, like Apache's "
        "LimitRequestBody).",
        "BYTES",
    ),
    Option("log-level", _level, "notice", "debug, info, notice, warn or error.", "LEVEL"),
]

_WORKERS = Option("workers", _int(1), 2, "worker processes.", "N")
_THREADS = Option("threads", _int(1), 4, "request threads per worker process.", "N")
_QUEUE = Option(
    "queue",
    _int(0),
    32,
    "requests a worker process accepts beyond its "
    "threads, to run as threads free up; beyond that a request is answered "
    "503 with FCGI_OVERLOADED.",
    "N",
)
_MAX_REQUESTS = Option(
    "max-requests",
    _int(0),
    0,
    "recycle a worker process after it has served this many requests (0 = never); it exits only between requests.",
    "N",
)
_REQUEST_TIMEOUT = Option(
    "request-timeout",
    _seconds,
    0.0,
    "answer 504 (if nothing "
    "was sent yet) and end a request running longer than this; the "
    "worker is then recycled (0 = no limit).",
    "SECONDS",
)
_IDLE_TIMEOUT = Option("idle-timeout", _seconds, 0.0, "stop after this long without a request (0 = never).", "SECONDS")

FASTCGI_OPTIONS = [
    Option(
        "bind",
        _bind,
        None,
        "where to listen: unix:/path/to/socket, tcp:HOST:PORT, "
        "or systemd (socket activation, fd 3; the default when LISTEN_FDS is set).",
        "ADDRESS",
    ),
    Option("socket-mode", _octal, 0o660, "permissions of a unix socket (default 660).", "MODE"),
    _WORKERS,
    _THREADS,
    _QUEUE,
    _MAX_REQUESTS,
    _REQUEST_TIMEOUT,
    Option("backlog", _int(1), 128, "listen backlog.", "N"),
    Option(
        "graceful-timeout",
        _seconds,
        30.0,
        "on SIGTERM or SIGHUP, how long a worker may take to finish its requests before it is killed.",
        "SECONDS",
    ),
    Option(
        "keep-timeout",
        _seconds,
        10.0,
        "a stopping worker hands its kept connections (mod_proxy_fcgi enablereuse=on) to the "
        "others; when there are none (the whole daemon stops) it serves them on until the web "
        "server closes them or they have been idle this long. Set it above the ttl= of Apache's "
        "ProxyPass, after which Apache uses an idle connection no more.",
        "SECONDS",
    ),
    Option(
        "pidfile",
        _text,
        None,
        "write the master process id to this file, locked (fcntl) while the master runs and removed when it exits.",
        "PATH",
    ),
    _IDLE_TIMEOUT,
    Option(
        "front-end",
        _front_end,
        "fastcgi",
        "the front end the application is told it runs under (environ['wsgate.front_end']): fastcgi, "
        "or relay for the backend that `wsgate relay` starts, which passes it.",
        "NAME",
    ),
]

FCGID_OPTIONS = [_MAX_REQUESTS]

RELAY_OPTIONS = [
    Option(
        "socket",
        _text,
        None,
        "unix socket of the backend (default: $XDG_RUNTIME_DIR/wsgate/ or /tmp/wsgate-UID/, one per application).",
        "PATH",
    ),
    _IDLE_TIMEOUT.but(
        default=300.0, help="a backend started by the relay stops after this long without a request (default 300)."
    ),
    Option(
        "start-timeout",
        _seconds,
        10.0,
        "how long to wait for a backend to start before running the application in-process.",
        "SECONDS",
    ),
    _WORKERS.but(default=1, help="worker processes of a backend started by the relay."),
    _THREADS.but(help="threads per worker of a backend started by the relay."),
    _QUEUE.but(help="passed to a backend started by the relay."),
    _MAX_REQUESTS.but(help="passed to a backend started by the relay."),
    _REQUEST_TIMEOUT.but(help="passed to a backend started by the relay."),
]

COMMANDS = {
    "cgi": ("run the application once as a CGI/1.1 program (mod_cgi, mod_cgid).", APP_OPTIONS + REQUEST_OPTIONS),
    "fastcgi": (
        "FastCGI daemon for mod_proxy_fcgi: prefork workers with threads.",
        APP_OPTIONS + REQUEST_OPTIONS + FASTCGI_OPTIONS,
    ),
    "fcgid": (
        "FastCGI program spawned by mod_fcgid (listening socket on fd 0).",
        APP_OPTIONS + REQUEST_OPTIONS + FCGID_OPTIONS,
    ),
    "relay": (
        "CGI program forwarding to a warm FastCGI backend it starts on demand.",
        APP_OPTIONS + REQUEST_OPTIONS + RELAY_OPTIONS,
    ),
    "version": ("print the version.", []),
}


class Config:
    def __init__(self, command):
        self.command = command

    def __repr__(self):
        return "Config(%r)" % vars(self)


def help_text(command):
    summary, options = COMMANDS[command]
    lines = [
        "usage: wsgate %s [options]" % command,
        "",
        summary,
        "",
        "Every option can also be set with the environment variable shown; the command line wins.",
        "",
        "options:",
    ]
    for opt in options:
        lines.append("  %s %s   [env %s]" % (opt.flag, opt.metavar, opt.env))
        default = opt.default
        if opt.convert is _octal and default is not None:
            default = "%o" % default
        text = opt.help
        if default not in (None, [], "") and "default" not in text:
            text += " Default: %s." % (default,)
        lines.append("      " + text)
    lines.append("  -h, --help")
    return "\n".join(lines) + "\n"


def _convert(opt, raw, source):
    try:
        return opt.convert(raw)
    except ValueError as exc:
        raise UsageError("%s: %s, got %r" % (source, exc, raw)) from None


def _process_environ():
    """os.environ, or while os is not imported (`wsgate relay`), a decoded copy.

    The relay runs once per request and never imports os (see relay.py); a
    command that changes the environment (systemd socket activation) runs
    with os imported and changes os.environ itself.
    """
    os = sys.modules.get("os")
    if os is not None:
        return os.environ
    encoding = sys.getfilesystemencoding()
    return {
        key.decode(encoding, "surrogateescape"): value.decode(encoding, "surrogateescape")
        for key, value in posix.environ.items()
    }


def parse(command, argv, environ=None):
    """Options for command from argv and environ; raises UsageError.

    Returns None when help was requested (the caller prints help_text()).
    """
    if environ is None:
        environ = _process_environ()
    if command not in COMMANDS:
        raise UsageError("unknown command %r; expected one of %s" % (command, ", ".join(COMMANDS)))
    options = COMMANDS[command][1]
    by_flag = {opt.flag: opt for opt in options}
    config = Config(command)
    given = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            return None
        flag, eq, value = arg.partition("=")
        opt = by_flag.get(flag)
        if opt is None:
            raise UsageError("unknown option %r for 'wsgate %s' (see wsgate %s --help)" % (arg, command, command))
        if not eq:
            if not args:
                raise UsageError("%s needs a value (%s)" % (flag, opt.metavar))
            value = args.pop(0)
        converted = _convert(opt, value, "%s (or %s)" % (flag, opt.env))
        if opt.multiple:
            given.setdefault(opt.attr, []).append(converted)
        else:
            given[opt.attr] = converted
    for opt in options:
        if opt.attr in given:
            value = given[opt.attr]
        elif environ.get(opt.env):
            raw = environ[opt.env]
            source = "%s (or %s)" % (opt.env, opt.flag)
            if opt.multiple:
                value = [_convert(opt, part, source) for part in raw.split(":") if part]
            else:
                value = _convert(opt, raw, source)
        else:
            value = list(opt.default) if opt.multiple else opt.default
        setattr(config, opt.attr, value)
    _check(config, environ)
    return config


def _check(config, environ):
    if config.command == "version":
        return
    if config.app and config.app_file:
        raise UsageError("--app (WSGATE_APP) and --app-file (WSGATE_APP_FILE) exclude each other; give one")
    if not config.app and not config.app_file:
        raise UsageError("no application: give --app MODULE:CALLABLE (WSGATE_APP) or --app-file PATH (WSGATE_APP_FILE)")
    if config.command == "fastcgi" and config.bind is None:
        if environ.get("LISTEN_FDS"):
            config.bind = ("systemd",)
        else:
            raise UsageError("--bind (WSGATE_BIND) is required: unix:/path/to/socket, tcp:HOST:PORT or systemd")
