"""docs/operators.rst shows real output: each of its commands, run in order against
a Redis session, prints what the page shows (timestamps and ages aside)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.cache import caches

from tests.conftest import require_service
from tests.docs_console import console_commands, normalized, page_blocks

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "operators.rst"
PAGE_REDIS = "redis://127.0.0.1:6379/0"


def test_every_command_of_the_page_prints_what_the_page_shows(tmp_path):
    require_service("redis")
    for uid in ("questionnaire-7", "questionnaire-8"):
        caches["redis"].delete_pattern(f"*{uid}*")  # left by an earlier run
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    commands = console_commands(page_blocks(PAGE))
    assert len(commands) >= 10
    for command, expected in commands:
        done = subprocess.run(
            ["bash", "-c", command.replace(PAGE_REDIS, settings.REDIS_URL) + " 2>&1"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        shown = normalized(expected.replace(PAGE_REDIS, settings.REDIS_URL))
        assert normalized(done.stdout) == shown, command
