"""How fires of this package and of Triggers 2.x interleave on one session during a
rolling upgrade (the single layout, on Redis).

    python benchmarks/rolling_upgrade_share.py [--fires 300] [--runs 1]

Two processes fire as 2.x does (python-redis-lock on the raw client, see
``tests/legacy_2x.py``) and two fire through this package, each ``--fires`` times,
all started at once on one session. Instances are numbered in the order their fires
landed, so the figures are: how many of this package's fires landed before the last
2.x fire did (while 2.x was active), and this package's share of the fires in that
window (half is a fair turn). Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import uuid

import django
from django.conf import settings

REDIS = os.environ.get("TRIGGERS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")


def configure() -> None:
    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": REDIS,
                "TIMEOUT": 3600,
            }
        },
        INSTALLED_APPS=["triggers"],
        TRIGGERS_CACHE_LAYOUT="single",
        USE_TZ=False,
    )
    django.setup()
    from triggers.registry import task_runners
    from triggers.tasks.runners import BaseTaskRunner

    class IdleRunner(BaseTaskRunner):
        """Takes a ready instance and does nothing with it."""

        name = "idle"

        def run(self, manager, task_instance):
            return None

    task_runners.register("idle", IdleRunner)


def fire_as_2x(uid: str, writer: str, fires: int) -> None:
    from django.core.cache import caches

    from tests.legacy_2x import fire_like_2x, raw_client_of

    cache = caches["default"]
    raw = raw_client_of(cache)
    for k in range(fires):
        fire_like_2x(cache, raw, uid, "page", {"writer": writer, "k": k})


def fire_as_3x(uid: str, writer: str, fires: int) -> None:
    from triggers import CacheStorageBackend, TriggerManager

    manager = TriggerManager(CacheStorageBackend(uid, cache="default", layout="single"))
    for k in range(fires):
        manager.fire("page", {"writer": writer, "k": k})


def one_run(fires: int) -> dict[str, object]:
    from django.core.cache import caches

    from triggers import CacheStorageBackend, TriggerManager

    uid = f"bench-rolling-{uuid.uuid4().hex}"
    config = {
        "t_page": {"after": ["page"], "andEvery": "page", "run": "bench.page", "using": "idle"}
    }
    TriggerManager(CacheStorageBackend(uid, cache="default", layout="single")).update_configuration(
        config
    )
    caches["default"].close()
    fork = multiprocessing.get_context("fork")
    targets = [
        (fire_as_2x, "2x-a"),
        (fire_as_2x, "2x-b"),
        (fire_as_3x, "3x-a"),
        (fire_as_3x, "3x-b"),
    ]
    children = [fork.Process(target=f, args=(uid, w, fires)) for f, w in targets]
    started = time.perf_counter()
    for child in children:
        child.start()
    for child in children:
        child.join(600)
    seconds = time.perf_counter() - started
    assert [c.exitcode for c in children] == [0] * 4, [c.exitcode for c in children]
    storage = CacheStorageBackend(uid, cache="default", layout="single")
    order = sorted(storage.iter_instances(), key=lambda i: int(i.name.rpartition("#")[2]))
    writers = [i.kwargs["page"]["writer"] for i in order]
    last_2x = max(n for n, w in enumerate(writers) if w.startswith("2x"))
    ours_in_window = sum(1 for w in writers[: last_2x + 1] if w.startswith("3x"))
    return {
        "fires": len(writers),
        "ours_while_2x_active": ours_in_window,
        "ours_total": 2 * fires,
        "share_while_2x_active": round(ours_in_window / (last_2x + 1), 3),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=300)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    configure()
    for _ in range(args.runs):
        print(json.dumps(one_run(args.fires)), flush=True)


if __name__ == "__main__":
    main()
