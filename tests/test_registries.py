"""The registries of storage backends, trigger managers and task runners.

They are filled from entry points, the package's own and those of the test
plugin (tests/plugin_pkg, installed as an application would install it:
``pip install ./tests/plugin_pkg``; tox does).
"""

import os
import subprocess
import sys
import threading

import pytest

from tests.test_locking import is_held
from triggers import CacheStorageBackend, TriggerManager, storage_backends, trigger_managers
from triggers.storages.base import BaseTriggerStorage
from triggers.tasks.runners import BaseTaskRunner, ThreadingTaskRunner, task_runners


def expected(plugin):
    """(registry, entry point group, key -> class it must give) for each registry."""
    return [
        (
            storage_backends,
            "triggers.storages",
            {"cache": CacheStorageBackend, "dict": plugin.DictStorageBackend},
        ),
        (trigger_managers, "triggers.managers", {"default": TriggerManager}),
        (
            task_runners,
            "triggers.runners",
            {"threading": ThreadingTaskRunner, "recording": plugin.RecordingRunner},
        ),
    ]


@pytest.fixture(params=["storages", "managers", "runners"])
def registry(request, plugin):
    """One registry, the group it reads and the classes it must have."""
    index = ["storages", "managers", "runners"].index(request.param)
    return expected(plugin)[index]


def run_python(code, tmp_path):
    """Run ``code`` in a fresh interpreter, outside the repository and with no Django settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --------------------------------------------------------------------------- the three registries


def test_group(registry):
    reg, group, _ = registry
    assert reg.group == group


def test_get_class(registry):
    reg, _, classes = registry
    for key, cls in classes.items():
        assert reg.get_class(key) is cls


def test_get_makes_a_new_instance_with_the_arguments(plugin, uid):
    storage = storage_backends.get("cache", uid, cache="locmem")
    assert type(storage) is CacheStorageBackend
    assert storage.uid == uid
    assert storage.cache is CacheStorageBackend(uid, cache="locmem").cache
    assert storage_backends.get("cache", uid) is not storage

    dict_storage = storage_backends.get("dict", uid=uid)
    assert type(dict_storage) is plugin.DictStorageBackend
    assert dict_storage.uid == uid

    manager = trigger_managers.get("default", storage)
    assert type(manager) is TriggerManager
    assert manager.storage is storage

    runner = task_runners.get("recording")
    assert type(runner) is plugin.RecordingRunner
    assert task_runners.get("recording") is not runner


def test_items_and_len(registry):
    reg, _, classes = registry
    items = reg.items()
    assert [key for key, _ in items] == sorted(key for key, _ in items)
    assert set(classes.items()) <= set(items)
    assert len(reg) == len(items) >= len(classes)
    assert sorted(reg) == [key for key, _ in items]
    for key in classes:
        assert key in reg
    assert "no-such-key" not in reg


def test_every_loaded_class_is_branded_with_its_key(registry):
    reg, _, _ = registry
    for key, cls in reg.items():
        assert cls.__dict__["triggers__registry_key"] == key
        assert reg.key_of(cls) == key


def test_unknown_key(registry):
    reg, group, classes = registry
    with pytest.raises(KeyError) as info:
        reg.get_class("no-such-key")
    message = str(info.value)
    assert "'no-such-key'" in message
    assert group in message
    for key in classes:
        assert key in message
    with pytest.raises(KeyError, match="no-such-key"):
        reg.get("no-such-key", "some argument")


def test_refresh_forgets_and_reads_the_entry_points_again(registry, uid):
    reg, _, classes = registry
    before = reg.items()

    class Stray:
        pass

    reg.register(f"stray-{uid}", Stray)
    assert reg.get_class(f"stray-{uid}") is Stray
    reg.refresh()
    with pytest.raises(KeyError):
        reg.get_class(f"stray-{uid}")
    # What other tests registered by hand is forgotten too; entry points are read again.
    assert set(reg.items()) <= set(before)
    for key, cls in classes.items():
        assert reg.get_class(key) is cls
        assert cls.triggers__registry_key == key


# --------------------------------------------------------------------------- brands


def test_objects_made_directly_carry_the_brand(uid, plugin):
    storage_backends.refresh()
    trigger_managers.refresh()
    storage = CacheStorageBackend(uid)
    assert CacheStorageBackend.triggers__registry_key == "cache"
    assert storage.triggers__registry_key == "cache"
    assert TriggerManager(storage).triggers__registry_key == "default"
    # A plugin class made directly is found in its registry, by class.
    assert storage_backends.key_of(plugin.DictStorageBackend) == "dict"
    assert storage_backends.key_of(type(storage)) == "cache"


def test_brands_in_a_fresh_process_before_any_registry_is_read(tmp_path, plugin):
    result = run_python(
        "from triggers import CacheStorageBackend, TriggerManager\n"
        "from triggers_test_plugin import DictStorageBackend\n"
        "from triggers.storages.base import storage_backends\n"
        "print(CacheStorageBackend.triggers__registry_key, TriggerManager.triggers__registry_key)\n"
        "print(storage_backends.key_of(DictStorageBackend), DictStorageBackend.triggers__registry_key)\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cache", "default", "dict", "dict"]


def test_runner_payload_names_the_plugin_storage(plugin, uid):
    manager = TriggerManager(plugin.DictStorageBackend(uid))
    manager.update_configuration({"t_one": {"after": ["go"], "run": "noop", "using": "recording"}})
    [instance] = manager.fire("go")
    payload = plugin.RecordingRunner()._prepare_task_kwargs(manager, instance)
    assert payload["storage_type"] == "dict"
    assert payload["manager_type"] == "default"
    assert payload["storage_uid"] == uid
    # ... and that is enough to rebuild the storage where a task runs.
    rebuilt = storage_backends.get(payload["storage_type"], payload["storage_uid"])
    assert rebuilt[instance.name].status == "scheduled"


# --------------------------------------------------------------------------- the plugin


def test_the_plugin_is_found_through_its_entry_points(plugin):
    storage_backends.refresh()
    task_runners.refresh()
    assert storage_backends.get_class("dict") is plugin.DictStorageBackend
    assert issubclass(plugin.DictStorageBackend, BaseTriggerStorage)
    assert task_runners.get_class("recording") is plugin.RecordingRunner
    assert issubclass(plugin.RecordingRunner, BaseTaskRunner)


@pytest.mark.parametrize(
    "code",
    [
        "import triggers_test_plugin",
        "from triggers.storages import storage_backends; storage_backends.get_class('dict')",
        "from triggers.runners import task_runners; task_runners.get_class('recording')",
        "from triggers.storages.base import storage_backends; storage_backends.items()",
        "import triggers.runners, triggers_test_plugin; from triggers import storage_backends; storage_backends.items()",
    ],
)
def test_loading_the_plugin_in_a_fresh_process_has_no_import_cycle(code, tmp_path, plugin):
    result = run_python(code + "\nprint('loaded')", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded"


def test_the_recipe_backend_defines_only_the_three_members(plugin):
    own = {
        name
        for name in vars(plugin.DictStorageBackend)
        if name not in ("__module__", "__doc__", "__qualname__", "__firstlineno__", "__static_attributes__")
        and name != "triggers__registry_key"
    }
    assert own == {"name", "_load_from_backend", "_save"}


def test_the_recipe_backend_with_the_manager_end_to_end(plugin, uid):
    already_recorded = len(plugin.RECORDED)
    manager = TriggerManager(plugin.DictStorageBackend(uid))
    manager.update_configuration(
        {
            "t_first": {"after": ["start"], "run": "noop", "using": "recording"},
            "t_second": {"after": ["t_first", "extra"], "run": "noop", "using": "recording"},
            "t_every": {"after": ["start"], "andEvery": "tick", "run": "noop", "using": "recording"},
            "t_never": {"after": ["start"], "unless": ["stop"], "run": "noop", "using": "recording"},
        }
    )
    manager.fire("stop")
    manager.fire("extra", {"x": 1})
    ready = manager.fire("start", {"who": uid})
    assert [i.name for i in ready] == ["t_first#0"]  # t_every waits for a tick too
    manager.update_instance_status("t_first#0", "finished", cascade=True, cascade_kwargs={"done": True})
    manager.fire("tick", {"n": 1})
    manager.fire("tick", {"n": 2})

    # A new storage object of the same session reads what was saved.
    storage = plugin.DictStorageBackend(uid)
    statuses = {instance.name: instance.status for instance in storage}
    assert statuses == {
        "t_first#0": "finished",
        "t_second#0": "scheduled",
        "t_every#0": "scheduled",
        "t_every#1": "scheduled",
        "t_never#0": "abandoned",
    }
    assert storage["t_second#0"].kwargs == {"t_first": {"done": True}, "extra": {"x": 1}}
    assert storage.latest_kwargs["tick"] == {"n": 2}
    assert plugin.RECORDED[already_recorded:] == ["t_first#0", "t_second#0", "t_every#0", "t_every#1"]


def test_the_recipe_backend_locks_through_the_default_cache(plugin, uid):
    storage = plugin.DictStorageBackend(uid)
    assert storage.get_lock_name() == f"triggers:{uid}:lock"
    with storage.acquire_lock():
        assert storage.has_lock
        assert is_held(f"triggers:{uid}:lock", "default")
    assert not is_held(f"triggers:{uid}:lock", "default")
    with pytest.raises(RuntimeError, match="lock"):
        storage.save()


def test_two_threads_fire_into_one_recipe_session_and_nothing_is_lost(plugin, uid):
    tag = uid[-12:]
    threads_names = ["a", "b"]
    config = {
        f"t_{tag}_{t}{i}": {"after": [f"go_{t}{i}"], "run": "noop", "using": "recording"}
        for t in threads_names
        for i in range(100)
    }
    TriggerManager(plugin.DictStorageBackend(uid)).update_configuration(config)
    errors = []

    def fire_all(thread_name):
        try:
            # Each thread has its own objects, as two requests would.
            manager = TriggerManager(plugin.DictStorageBackend(uid))
            for i in range(100):
                manager.fire(f"go_{thread_name}{i}", {"i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fire_all, args=(t,)) for t in threads_names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors

    recorded = sorted(name for name in plugin.RECORDED if name.startswith(f"t_{tag}_"))
    assert recorded == sorted(f"{task}#0" for task in config)
    storage = plugin.DictStorageBackend(uid)
    assert len(storage.instances) == 200
    assert all(instance.status == "scheduled" for instance in storage)
    assert len(storage.latest_kwargs) == 200
    assert storage[f"t_{tag}_b99#0"].kwargs == {"go_b99": {"i": 99}}


# --------------------------------------------------------------------------- a broken plugin


def test_a_plugin_that_fails_to_import_breaks_only_its_own_key(tmp_path, monkeypatch):
    from triggers.registry import EntryPointRegistry, PluginLoadError

    dist = tmp_path / "triggers_broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: triggers-broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[triggers.storages]\nbroken = triggers_broken_plugin_missing:Backend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = EntryPointRegistry("triggers.storages")

    assert "broken" in registry.keys()
    assert registry.get_class("cache") is CacheStorageBackend
    with pytest.raises(PluginLoadError) as info:
        registry.get_class("broken")
    assert isinstance(info.value, ImportError)
    message = str(info.value)
    assert "'broken'" in message
    assert "triggers_broken_plugin_missing:Backend" in message
    assert "triggers.storages" in message
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(PluginLoadError):
        registry.items()
    assert registry.get_class("cache") is CacheStorageBackend
