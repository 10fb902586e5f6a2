import subprocess
import sys

import pytest
from support import child_env

from wsgate import config
from wsgate.config import UsageError, parse


def test_flags_win_over_environment():
    env = {"WSGATE_APP": "a:b", "WSGATE_WORKERS": "3", "WSGATE_BIND": "unix:/x.sock"}
    cfg = parse("fastcgi", ["--workers", "5"], env)
    assert (cfg.app, cfg.workers, cfg.bind) == ("a:b", 5, ("unix", "/x.sock"))
    assert cfg.threads == 4 and cfg.max_requests == 0


def test_values_and_defaults():
    cfg = parse(
        "fastcgi",
        [
            "--app=m:app",
            "--bind",
            "tcp:[::1]:9000",
            "--max-body",
            "10M",
            "--socket-mode",
            "600",
            "--python-path",
            "a",
            "--python-path",
            "b",
            "--mount-prefix",
            "/app/",
        ],
        {},
    )
    assert cfg.bind == ("tcp", "::1", 9000)
    assert cfg.max_body == 10 * 1024 * 1024 and cfg.socket_mode == 0o600
    assert cfg.python_path == ["a", "b"] and cfg.mount_prefix == "/app"
    cfg = parse("relay", ["--app", "m"], {"WSGATE_PYTHON_PATH": "x:y"})
    assert cfg.python_path == ["x", "y"] and cfg.idle_timeout == 300 and cfg.workers == 1


def test_systemd_is_default_under_socket_activation():
    assert parse("fastcgi", ["--app", "m:a"], {"LISTEN_FDS": "1"}).bind == ("systemd",)
    with pytest.raises(UsageError, match="--bind"):
        parse("fastcgi", ["--app", "m:a"], {})


@pytest.mark.parametrize(
    "argv,env,needle",
    [
        (["--workers", "0"], {}, "--workers (or WSGATE_WORKERS)"),
        ([], {"WSGATE_THREADS": "many"}, "WSGATE_THREADS (or --threads)"),
        (["--bind", "http://x"], {}, "unix:/path"),
        (["--max-body", "lots"], {}, "1G"),
        (["--request-timeout", "-1"], {}, "seconds"),
        (["--socket-mode", "999"], {}, "octal"),
        (["--nope", "1"], {}, "unknown option"),
        (["--workers"], {}, "needs a value"),
    ],
)
def test_bad_values_name_the_option(argv, env, needle):
    with pytest.raises(UsageError) as info:
        parse("fastcgi", ["--app", "m:a", "--bind", "unix:/s", *argv], env)
    assert needle in str(info.value)


def test_app_required_and_exclusive():
    with pytest.raises(UsageError, match="no application"):
        parse("cgi", [], {})
    with pytest.raises(UsageError, match="exclude"):
        parse("cgi", ["--app", "m:a", "--app-file", "x.py"], {})
    with pytest.raises(UsageError, match="MODULE:CALLABLE"):
        parse("cgi", ["--app", "not a module"], {})


def test_help_documents_every_option_and_env_var():
    for command, (_, options) in config.COMMANDS.items():
        text = config.help_text(command)
        for opt in options:
            assert opt.flag in text and opt.env in text


def test_cli_exit_status_and_message():
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "fastcgi", "--app", "m:a", "--bind", "unix:/s", "--threads", "x"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2
    assert "--threads (or WSGATE_THREADS): expected an integer >= 1, got 'x'" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "version"], env=child_env(), capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 0 and proc.stdout.startswith("wsgate ")
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "relay", "--help"], env=child_env(), capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 0 and "WSGATE_START_TIMEOUT" in proc.stdout
