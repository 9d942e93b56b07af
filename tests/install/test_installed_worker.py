"""The package as a user installs it: a wheel with its ``celery`` extra, nothing else.

A fresh virtual environment gets the built wheel with the extra the README
documents (no test extra, no pytest: pytest once brought ``packaging`` and
hid that kombu's Redis transport needs it). A real ``celery worker`` started
from that environment, on the Redis broker, runs a task that a trigger
scheduled, end to end. ``tox -e install`` runs this; elsewhere it is skipped
unless ``TRIGGERS_TEST_INSTALL=1``, because it installs packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.settings import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).resolve().parent / "project"
BROKER = os.environ.get("TRIGGERS_TEST_CELERY_REDIS_BROKER", "redis://127.0.0.1:6379/9")
#: upper bounds, so that a hang fails the test instead of the run
INSTALL_LIMIT = 600
TASK_WAIT = 120

pytestmark = pytest.mark.skipif(
    os.environ.get("TRIGGERS_TEST_INSTALL") != "1",
    reason="installs packages into a new virtual environment: tox -e install"
    " (or TRIGGERS_TEST_INSTALL=1)",
)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_LIMIT, **kwargs)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(into: Path) -> Path:
    """The wheel of the checkout, built from a copy so the checkout gets no build files."""
    source = into / "source"
    tracked = run(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(into / "dist"), str(source)])
    [wheel] = (into / "dist").glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of the new environment, the wheel) with ``wheel[celery]`` installed alone."""
    require_service("redis")
    work = tmp_path_factory.mktemp("install")
    wheel = build_wheel(work)
    run([sys.executable, "-m", "venv", str(work / "venv")])
    python = work / "venv" / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", f"{wheel}[celery]"])
    return python, wheel


def test_the_wheel_is_triggers_django_and_imports_as_triggers(installed):
    python, wheel = installed
    assert wheel.name.startswith("triggers_django-")
    probe = (
        "import importlib.metadata as m, importlib.util as u, json, triggers\n"
        "d = m.distribution('triggers-django')\n"
        "print(json.dumps({'version': d.version, 'module': triggers.__version__,\n"
        "  'groups': sorted({e.group for e in d.entry_points}),\n"
        "  'other_triggers': [x.metadata['Name'] for x in m.distributions()\n"
        "                     if x.metadata['Name'].lower() == 'triggers'],\n"
        "  'pytest': u.find_spec('pytest') is not None}))\n"
    )
    found = json.loads(run([str(python), "-c", probe]).stdout)
    assert found["version"] == found["module"]
    assert found["groups"] == ["triggers.managers", "triggers.runners", "triggers.storages"]
    assert found["other_triggers"] == []  # PyPI's unrelated 'triggers' was not pulled in
    assert found["pytest"] is False  # nothing of the test extra came along


def test_a_celery_worker_from_the_installed_package_runs_a_task(installed, tmp_path):
    python, _ = installed
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    queue = f"triggers-install-{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO_"))}
    env.update(
        INSTALL_TEST_REDIS_URL=REDIS_URL, INSTALL_TEST_BROKER=BROKER, INSTALL_TEST_QUEUE=queue
    )
    celery = python.parent / "celery"
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(celery), "-A", "proj", "worker", "--pool", "solo", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        fired = run(
            [str(python), "fire.py", f"order-{queue}", str(TASK_WAIT)], cwd=project, env=env
        )
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
    worker_log = (tmp_path / "worker.log").read_text()
    outcome = json.loads(fired.stdout.splitlines()[-1])
    assert outcome["scheduled"] == ["t_total#0"]
    assert outcome["status"] == "finished", (outcome, worker_log)
    assert outcome["result"]["total"] == 12
    assert outcome["result"]["pid"] == worker.pid != outcome["pid"]  # the worker ran it (solo pool)
    assert "shop.total" in worker_log  # the worker registered and received the Celery task


def test_the_celery_and_redis_extras_install_together(installed):
    """The redis extra's pins leave room for the redis-py Celery's transport wants."""
    python, wheel = installed
    run([str(python), "-m", "pip", "install", "-q", "--dry-run", f"{wheel}[celery,redis]"])
