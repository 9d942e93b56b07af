"""``python -m triggers demo``, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import require_service

DEMO_INSTANCES = [
    "t_importSubject#0",
    "t_importResponses#0",
    "t_importResponses#1",
    "t_importResponses#2",
    "t_importBrowserMetadata#0",
]


def run_demo(tmp_path, *args):
    # The demo brings its own settings; make sure the suite's are not in the way.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "triggers", "demo", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def table(output):
    """{instance: status} from the final table."""
    lines = output.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("instance ")) + 2
    rows = {}
    for line in lines[start:]:
        if line and not line.startswith(" "):
            name, status = line.split()[:2]
            rows[name] = status
    return rows


def position(lines, pattern):
    """Index of the first line that matches ``pattern``."""
    return next(n for n, line in enumerate(lines) if re.search(pattern, line))


@pytest.mark.parametrize("runner", ["threading", "sync"])
def test_demo_runs_every_task(tmp_path, runner):
    output = run_demo(tmp_path, "--runner", runner)

    assert table(output) == {name: "finished" for name in DEMO_INSTANCES}
    assert '"subjectId": 57414' in output
    assert "> fire questionnaireComplete" in output


def test_demo_with_a_failure_replays_it(tmp_path):
    output = run_demo(tmp_path, "--fail", "t_importResponses")
    lines = output.splitlines()

    rows = table(output)
    assert rows == {
        **{name: "finished" for name in DEMO_INSTANCES},
        "t_importResponses#0": "replayed",
        "t_importResponses#3": "finished",
    }
    failed = position(lines, r"^ +t_importResponses#0 +failed: RuntimeError: simulated failure")
    replay = position(lines, r"^> replay t_importResponses#0$")
    finished = position(lines, r"^ +t_importResponses#3 +finished")
    assert failed < replay < finished
    assert "replay of t_importResponses#0" in output


def test_demo_embedded_abandons_the_browser_task(tmp_path):
    rows = table(run_demo(tmp_path, "--embedded", "--runner", "sync"))
    assert rows["t_importBrowserMetadata#0"] == "abandoned"
    assert {rows[name] for name in DEMO_INSTANCES if "Browser" not in name} == {"finished"}


def test_demo_on_redis(tmp_path):
    require_service("redis")
    from django.conf import settings

    output = run_demo(tmp_path, "--cache", settings.REDIS_URL, "--fail", "t_importSubject")
    rows = table(output)
    assert rows == {
        "t_importSubject#0": "replayed",
        "t_importSubject#1": "finished",
        **{name: "finished" for name in DEMO_INSTANCES[1:]},
    }
    assert f"cache: {settings.REDIS_URL}" in output


def test_demo_help_lists_its_options(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "triggers", "demo", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0
    for option in ("--cache", "--fail", "--runner", "--embedded"):
        assert option in done.stdout
