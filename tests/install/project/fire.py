"""Fire one trigger, then wait for the worker to finish the task it scheduled.

Prints one JSON line: the instance's status, its result, and this process's pid.
"""

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
django.setup()

from triggers import CacheStorageBackend, TriggerManager  # noqa: E402

uid, wait = sys.argv[1], float(sys.argv[2])
manager = TriggerManager(CacheStorageBackend(uid))
manager.update_configuration({"t_total": {"after": ["orderPlaced"], "run": "shop.total"}})
scheduled = [instance.name for instance in manager.fire("orderPlaced", {"prices": [3, 4, 5]})]

# A bound on the wait, so that a worker that never runs the task fails the test.
give_up = time.monotonic() + wait
instance = CacheStorageBackend(uid)["t_total#0"]
while instance.status not in ("finished", "failed") and time.monotonic() < give_up:
    time.sleep(0.2)
    instance = CacheStorageBackend(uid)["t_total#0"]
print(
    json.dumps(
        {
            "scheduled": scheduled,
            "status": instance.status,
            "result": instance.metadata.get("result"),
            "error": instance.metadata.get("exceptionInfo"),
            "pid": os.getpid(),
        }
    )
)
CacheStorageBackend(uid).delete()  # leave nothing behind in the shared Redis
