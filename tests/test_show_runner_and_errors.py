"""``show`` names the runner a task without ``using`` runs on, and each error with its message."""

from __future__ import annotations

import json

from tests.ops_support import command
from triggers import CacheStorageBackend, TriggerManager


def test_show_names_the_default_runner_and_the_error_message(uid, settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"
    manager = TriggerManager(CacheStorageBackend(uid, cache="locmem"))
    manager.update_configuration(
        {
            "plain": {
                "after": ["go"],
                "run": "tests.behave",
                "withParams": {"behave": {"raise": "no disk left"}},
            },
            "pinned": {"after": ["never"], "run": "tests.behave", "using": "threading"},
        }
    )
    manager.fire("go", {})
    lines = command("show", uid, "--cache", "locmem").splitlines()
    plain = next(line for line in lines if line.startswith("plain ") and "tests.behave" in line)
    pinned = next(line for line in lines if line.startswith("pinned ") and "tests.behave" in line)
    assert plain.endswith("sync (default)"), plain
    assert pinned.endswith("threading"), pinned
    failed = next(line for line in lines if line.startswith("plain#0 "))
    assert failed.endswith("ValueError: no disk left"), failed
    report = json.loads(command("show", uid, "--cache", "locmem", "--json"))
    assert report["defaultRunner"] == "sync"
    assert report["instances"][0]["error"] == "ValueError: no disk left"
