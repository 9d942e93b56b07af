"""A Triggers 2.x process, as far as the tests need one: how it reads, locks and fires.

Written from what 2.x is known to do (Triggers 2.x itself does not install
on current Pythons): it keeps a session in one cache value
``{'tasks', 'instances', 'metas'}``, reads it with ``.get()`` defaults (a
missing part reads as empty) and builds a task configuration from each
``tasks`` entry by keyword; it locks a session with python-redis-lock
2.3.0 on the raw Redis client, under the name ``triggers:<uid>:lock``; a
fire adds the instances it readies and saves the whole value back.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import redis_lock

from triggers.types import TaskConfig, TaskInstance


def key_of(uid: str) -> str:
    return "triggers.storages.cache:" + uid


def load_like_2x(value: Any) -> tuple[dict[str, TaskConfig], dict[str, TaskInstance], dict[str, Any]]:
    """What a 2.x loader makes of a cache value; raises where 2.x would."""
    data = value or {}
    configs = {name: TaskConfig(name=name, **definition) for name, definition in data.get("tasks", {}).items()}
    instances = {
        name: TaskInstance(
            name=name,
            config=configs[record["task"]],
            status=record["status"],
            metadata=record["metadata"],
            kwargs=record["kwargs"],
            abandonState=record["abandonState"],
        )
        for name, record in data.get("instances", {}).items()
    }
    metas = dict(data.get("metas", {}))
    metas.setdefault("latest_kwargs", {})
    return configs, instances, metas


def fire_like_2x(cache: Any, raw_client: Any, uid: str, trigger: str, kwargs: dict, ttl: int = 30) -> None:
    """One 2.x fire of an ``andEvery`` trigger: lock, read, add the instance, save, release."""
    with redis_lock.Lock(raw_client, name=f"triggers:{uid}:lock", expire=ttl):
        configs, instances, metas = load_like_2x(cache.get(key_of(uid)))
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for config in configs.values():
            if trigger not in config.after:
                continue
            number = sum(1 for i in instances.values() if i.config.name == config.name)
            instance = TaskInstance(
                name=f"{config.name}#{number}",
                config=config,
                status=TaskInstance.STATUS_SCHEDULED,
                metadata={"timestamps": {"created": now, "scheduled": now, "lastModified": now}},
                kwargs={trigger: copy.deepcopy(kwargs)},
            )
            instances[instance.name] = instance
        metas["latest_kwargs"][trigger] = kwargs
        cache.set(
            key_of(uid),
            {
                "tasks": {name: config.serialize() for name, config in configs.items()},
                "instances": {name: instance.serialize() for name, instance in instances.items()},
                "metas": metas,
            },
            timeout=3600,
        )


def raw_client_of(cache: Any) -> Any:
    """The raw redis-py client 2.x locked with (django-redis's, or Django's RedisCache's)."""
    if hasattr(cache, "client") and hasattr(cache.client, "get_client"):
        return cache.client.get_client(write=True)
    return cache._cache.get_client(None, write=True)
