"""Working with a session's state through its storage (docs/storage.rst).

Nothing here runs a task: the configuration waits for a trigger that is
never fired, so every instance stays where the storage API puts it.
"""

from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import UnknownInstance

CONFIGURATION = {
    "t_importSubject": {"after": ["firstPageReceived", "consentGiven"], "run": "import_subject"},
    "t_scorePage": {"after": ["t_importSubject"], "andEvery": "pageReceived", "run": "score_page"},
}


def build_session(uid, cache="default"):
    """Configure a session and fire a few triggers; returns its manager."""
    manager = TriggerManager(CacheStorageBackend(uid, cache=cache))
    manager.update_configuration(CONFIGURATION)
    manager.fire("firstPageReceived", {"page": 1})
    manager.fire("pageReceived", {"page": 1})
    manager.fire("pageReceived", {"page": 2})
    return manager


def read_session(uid, cache="default"):
    """Read the session back with a storage object of its own."""
    storage = CacheStorageBackend(uid, cache=cache)

    subject = storage["t_importSubject#0"]  # one instance, by name
    print(subject, subject.kwargs)  # t_importSubject#0 (unstarted) {'firstPageReceived': {'page': 1}}

    for instance in storage.iter_instances():  # every instance (order undefined)
        print(instance.name, instance.status)

    pages = storage.instances_of_task("t_scorePage")  # name -> instance
    print(sorted(pages))  # ['t_scorePage#0', 't_scorePage#1']

    try:
        storage["t_importSubject#9"]
    except UnknownInstance as exc:  # a KeyError
        print(exc)  # no task instance named 't_importSubject#9' in session ...

    return storage


def change_session(uid, cache="default"):
    """Change state directly: always under the lock, and persisted only by save()."""
    storage = CacheStorageBackend(uid, cache=cache)
    with storage.acquire_lock():  # re-reads the session as it is saved now
        extra = storage.create_instance("t_scorePage", kwargs={"pageReceived": {"page": 0}})
        retry = storage.clone_instance("t_scorePage#0")  # same task, copied kwargs
        storage.metadata["reviewed_by"] = "ops"
        storage.save()
    return extra, retry
