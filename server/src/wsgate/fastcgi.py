"""`wsgate fastcgi`: the FastCGI daemon for mod_proxy_fcgi."""

import os

from . import log
from .connection import Settings
from .listeners import ListenError, open_listener
from .loader import load_app, prepare_process
from .pidfile import PidFile
from .supervisor import EXIT_BOOT_FAILURE, Supervisor
from .worker import Worker


def _unlinker(path):
    """Remove our unix socket at stop, unless something else replaced it."""
    if path is None:
        return None
    inode = os.stat(path).st_ino

    def unlink():
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except OSError:
            pass

    return unlink


def web_server_addrs():
    """The FastCGI spec's allow-list for TCP peers, None when unrestricted."""
    raw = os.environ.get("FCGI_WEB_SERVER_ADDRS", "").strip()
    if not raw:
        return None
    return frozenset(addr.strip() for addr in raw.split(",") if addr.strip())


def main(config):
    try:
        listener, path = open_listener(config.bind, config.backlog, config.socket_mode)
    except ListenError as exc:
        log.error("%s", exc)
        return 1
    unlink = _unlinker(path)
    pidfile = PidFile(config.pidfile) if config.pidfile else None
    if pidfile is not None:
        try:
            pidfile.write(os.getpid())
        except OSError as exc:
            log.error("cannot write the pid file %s: %s", pidfile.path, exc)
            listener.close()
            if unlink is not None:
                unlink()
            return 1
    prepare_process(config)
    settings = Settings(
        max_body=config.max_body,
        mount_prefix=config.mount_prefix,
        max_conns=config.workers * (config.threads + config.queue),
        max_reqs=config.workers * config.threads,
        proxy_paths=True,
        multithread=config.threads > 1,
        multiprocess=config.workers > 1,
        allowed_peers=web_server_addrs(),
        front_end=config.front_end,
    )
    master_pid = os.getpid()

    def boot(slot, lifeline, channel):
        try:
            if config.chdir:
                # Again in each worker: after a deploy repoints a link and
                # reloads, new workers start where the link points now.
                os.chdir(config.chdir)
            app = load_app(config)
        except BaseException:
            log.exception("cannot load the application")
            return EXIT_BOOT_FAILURE
        worker = Worker(
            listener,
            app,
            settings,
            config.threads,
            config.max_requests,
            config.request_timeout,
            slot,
            lifeline=lifeline,
            queue_size=config.queue,
            channel=channel,
            keep_timeout=config.keep_timeout,
        )
        worker.install_signals()
        return worker.run()

    supervisor = Supervisor(boot, config.workers, config.graceful_timeout, config.idle_timeout, on_stop=unlink)
    try:
        return supervisor.run()
    finally:
        if os.getpid() == master_pid:
            listener.close()
            if unlink is not None:
                unlink()
            if pidfile is not None:
                pidfile.remove()
