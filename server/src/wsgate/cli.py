"""`wsgate COMMAND [options]`: dispatch to a front end.

Front-end modules are imported only once chosen, so that `wsgate relay`
loads nothing but what forwarding a request needs.
"""

import sys

from . import __version__
from .config import COMMANDS, UsageError, help_text, parse

USAGE = "usage: wsgate {%s} [options]   (wsgate COMMAND --help for details)\n" % (",".join(COMMANDS))


def _load(command):
    if command == "cgi":
        from . import cgi as module
    elif command == "fastcgi":
        from . import fastcgi as module
    elif command == "fcgid":
        from . import fcgid as module
    else:
        from . import relay as module
    return module


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        for name, (summary, _) in COMMANDS.items():
            sys.stdout.write("  %-8s %s\n" % (name, summary))
        return 0 if argv else 2
    if argv[0] in ("version", "--version"):
        sys.stdout.write("wsgate %s\n" % __version__)
        return 0
    command = argv[0]
    try:
        config = parse(command, argv[1:])
    except UsageError as exc:
        sys.stderr.write("wsgate %s: error: %s\n" % (command, exc))
        return 2
    if config is None:
        sys.stdout.write(help_text(command))
        return 0
    from . import log

    log.set_level(config.log_level)
    return _load(command).main(config)


def run():
    sys.exit(main())
