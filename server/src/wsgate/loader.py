"""Finding and importing the WSGI application."""

import importlib
import os
import sys


class AppLoadError(Exception):
    pass


def prepare_process(config):
    """--chdir and --python-path, done before anything of the application runs."""
    if config.chdir:
        os.chdir(config.chdir)
    for entry in reversed(config.python_path):
        sys.path.insert(0, os.path.abspath(entry))


def _resolve(obj, dotted, where):
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError("%s has no attribute %r" % (where, dotted)) from None
    return obj


def _load_file(path):
    import importlib.machinery
    import importlib.util

    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise AppLoadError("application file %s does not exist" % path)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    stem = os.path.basename(path).split(".")[0] or "app"
    name = "_wsgate_app_" + "".join(c if c.isalnum() else "_" for c in stem)
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def load_app(config):
    """Import the application named by --app or --app-file/--callable.

    Errors raised by the application's own import propagate unchanged so the
    traceback points at the application; naming errors become AppLoadError.
    """
    if config.app:
        module_name, _, attr = config.app.partition(":")
        attr = attr or config.callable
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise AppLoadError("cannot import module %r (sys.path: %s)" % (module_name, sys.path)) from None
            raise
        where = module_name
    else:
        module = _load_file(config.app_file)
        attr = config.callable
        where = config.app_file
    app = _resolve(module, attr, where)
    if not callable(app):
        raise AppLoadError("%s:%s is not callable" % (where, attr))
    return app
