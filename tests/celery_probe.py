"""Run a short script in a fresh Python, as a process that starts up would, and read its report.

Whether Celery is importable, and which Celery apps exist, is state of the
whole process: the tests of the default runner and of Celery being optional
each need a process of their own. ``hide_celery`` makes Celery unfindable
there, as if it were not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = '''
import json, sys

class HideCelery:
    """A finder that tells that no module celery exists, so nothing finds it."""

    def find_spec(self, name, path=None, target=None):
        if name == "celery" or name.startswith("celery."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
        return None

if HIDE_CELERY:
    sys.meta_path.insert(0, HideCelery())


def report(**extra):
    from django.core import checks
    from triggers.conf import default_runner_choice

    choice = default_runner_choice()
    infos = [m.msg for m in checks.run_checks(tags=["triggers"]) if m.id == "triggers.I001"]
    loaded = sorted(m for m in sys.modules if m == "celery" or m.startswith("celery."))
    print(json.dumps({
        "name": choice.name, "reason": choice.reason, "from_setting": choice.from_setting,
        "I001": infos, "celery_modules": loaded, **extra,
    }))
'''


def probe(script: str, hide_celery: bool = False, settings: str | None = "tests.celery_app.settings") -> dict[str, Any]:
    """Run ``script`` (which ends by calling ``report()``) and return what it reported.

    ``settings``: the ``DJANGO_SETTINGS_MODULE`` (the test project's, where
    ``TRIGGERS_DEFAULT_RUNNER`` is not set), or None for none.
    """
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    if settings:
        env["DJANGO_SETTINGS_MODULE"] = settings
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    code = f"HIDE_CELERY = {hide_celery!r}\n{PRELUDE}\n{textwrap.dedent(script)}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    reported: dict[str, Any] = json.loads(lines[-1])
    reported["stdout"] = "\n".join(lines[:-1])
    return reported
