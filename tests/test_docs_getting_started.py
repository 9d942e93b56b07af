"""docs/getting-started.rst, done as a reader does it: a new Django project in a
temporary directory, made of the page's files, its test run, its shell session
and operator commands run, their output compared with what the page shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches

from tests.conftest import require_service
from tests.docs_console import console_commands, normalized, page_blocks

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "getting-started.rst"
#: the Redis the page names, and the one the tests use instead
PAGE_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def project(tmp_path):
    """The page's project, built by its own commands and files."""
    require_service("redis")
    caches["redis"].delete_pattern("*questionnaire-42*")  # the page's session, from an earlier run
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    blocks = page_blocks(PAGE)
    [setup] = [body for kind, _, body in blocks if kind == "sh" and "startproject" in body]
    script = "\n".join(line for line in setup.splitlines() if not line.startswith("pip install"))
    done = subprocess.run(["bash", "-ec", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    site = tmp_path / "mysite"
    for kind, caption, body in blocks:
        if kind != "python" or not caption or "manage.py" in caption:
            continue
        path = site / caption.split()[0]
        if "(at the end)" in caption:
            path.write_text(path.read_text() + "\n" + body.replace(PAGE_REDIS, settings.REDIS_URL))
        else:
            path.write_text(body)
    return site, env, blocks


def run(site, env, command):
    argv = command.split()
    if argv[0] == "python":
        argv[0] = sys.executable
    return subprocess.run(argv, cwd=site, env=env, capture_output=True, text=True, timeout=300)


def redis_keys() -> set[bytes]:
    """Every key of the Redis database the page's project uses (the tests' own)."""
    import redis

    return set(redis.Redis.from_url(settings.REDIS_URL).scan_iter(count=1000))


def test_getting_started_builds_a_project_that_works(project):
    site, env, blocks = project
    commands = console_commands(blocks)
    assert [c for c, _ in commands][:2] == [
        "python manage.py check",
        "python manage.py test questionnaire",
    ]
    checked = run(site, env, commands[0][0])
    # The page's settings are a correct project: the checks have nothing to say.
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    assert normalized(checked.stdout) == normalized(commands[0][1])

    before = redis_keys()
    tested = run(site, env, commands[1][0])
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Ran 1 test" in tested.stderr and "OK" in tested.stderr
    assert tested.stdout.startswith("Found 1 test(s).\nSystem check identified no issues")
    # The tutorial's test keeps its sessions in a cache of its own: nothing reaches Redis.
    assert redis_keys() - before == set()

    [shell] = [body for kind, caption, body in blocks if caption == "python manage.py shell"]
    [printed] = [body for kind, _, body in blocks if kind == "output"]
    session = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", shell], cwd=site, env=env, capture_output=True, text=True
    )
    assert session.returncode == 0, session.stderr
    assert session.stdout.splitlines() == printed.strip("\n").splitlines()

    for command, expected in commands[2:]:
        done = run(site, env, command)
        assert done.returncode == 0, (command, done.stderr)
        assert normalized(done.stdout) == normalized(expected), command
