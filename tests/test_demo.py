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
        if not line:  # the table ends with the first empty line
            break
        if not line.startswith(" "):
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
    assert "look at it again: python -m triggers show demo-" in output


def test_demo_help_lists_its_options(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "triggers", "demo", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0
    for option in ("--cache", "--fail", "--runner", "--embedded"):
        assert option in done.stdout


def run_demo_raw(tmp_path, *args, python_args=()):
    """The demo's finished process, whatever its exit status."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, *python_args, "-m", "triggers", "demo", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def assert_refused_in_one_line(done, *words):
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    for word in words:
        assert word in line, line


def test_demo_on_an_unreachable_redis_says_so_in_one_line(tmp_path):
    done = run_demo_raw(tmp_path, "--cache", "redis://127.0.0.1:1/0")
    assert_refused_in_one_line(done, "cannot reach Redis at redis://127.0.0.1:1/0")


def test_demo_without_a_redis_client_says_what_to_install(tmp_path):
    # The interpreter runs with both client packages made unimportable, as on
    # a machine where neither is installed.
    starter = (
        "import sys, runpy; sys.modules['redis'] = sys.modules['django_redis'] = None;"
        " sys.argv[0] = 'triggers'; runpy.run_module('triggers', run_name='__main__')"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", starter, "demo", "--cache", "redis://127.0.0.1:6379/0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert_refused_in_one_line(done, "needs a Redis client", "pip install redis")


def test_demo_refuses_a_cache_that_is_not_redis(tmp_path):
    assert_refused_in_one_line(run_demo_raw(tmp_path, "--cache", "memcached://x"), "redis:// URL")


@pytest.mark.parametrize("runner", ["threading", "sync"])
def test_demo_prints_scheduled_before_the_run_it_caused(tmp_path, runner):
    lines = run_demo(tmp_path, "--runner", runner, "--fail", "t_importSubject").splitlines()
    events = lines[: position(lines, r"^instance ")]
    names = DEMO_INSTANCES + ["t_importSubject#1"]
    for name in names:
        scheduled = position(events, rf"^  {re.escape(name)} +scheduled ")
        running = position(events, rf"^  {re.escape(name)} +running$")
        assert scheduled < running, (name, events)
    assert position(events, r"^  t_importSubject#0 +scheduled after questionnaireComplete$") < position(
        events, r"^  fire t_importSubject "
    )
    assert re.search(r"^  t_importSubject#1 +scheduled to replay t_importSubject#0$", "\n".join(events), re.M)


@pytest.mark.parametrize("args", [(), ("--fail", "t_importResponses", "--runner", "sync"), ("--embedded",)])
def test_demo_lines_are_at_most_100_characters(tmp_path, args):
    output = run_demo(tmp_path, *args)
    too_long = [line for line in output.splitlines() if len(line) > 100]
    assert too_long == []


def test_demo_can_leave_its_failures_for_an_operator(tmp_path):
    output = run_demo(tmp_path, "--fail", "t_importResponses", "--no-replay", "--runner", "sync")
    assert table(output)["t_importResponses#0"] == "failed"
    assert "> replay" not in output
    assert output.rstrip().endswith("left failed (--no-replay): t_importResponses#0")
