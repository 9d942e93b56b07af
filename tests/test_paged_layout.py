"""The paged layout: records kept as entries of pages, merged in on the Redis server.

Every storage test that takes the ``layout`` fixture runs it on Redis too;
these are what only pages have: where records are stored, pages damaged or
deleted by hand, names that could break a page's framing or a key, and
the refusal on every other cache (switching layouts both ways is
tests/test_storage.py's, with the other layouts).
"""

import datetime
import time
import uuid

import pytest
from django.conf import settings
from django.core import checks
from django.core.cache import caches

from tests.conftest import PAGED_CACHES, prepare_cache
from tests.storage_support import fresh, raw
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import InvalidArgument, SessionIncomplete, StorageCorrupted
from triggers.locking.driver_table import write_driver
from triggers.locking.pages import PAGE_MARK, decode_page, encode_entries, entry_address
from triggers.locking.raw_values import RAW_MARK
from triggers.locking.writes import CommitGuard, Outcome, Writes
from triggers.storages.cache.keys import PAGE_RECORDS

AWKWARD_NAMES = [
    "line\nbreak",
    "brace{tag}",
    "colon:i:x",
    "\x1b[31mred\x1b[0m",
    "t#\u00b2",
    "tab\there",
    "\u00e9t\u00e9 \U0001f600",
    "y" * 300,
]


@pytest.fixture(params=sorted(PAGED_CACHES))
def redis_cache(request):
    return prepare_cache(request, request.param)


def redis_client(alias):
    """A client of the server both Redis caches of the suite use (the server's own view)."""
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def server_keys(alias, uid):
    """Every key of the session ``uid`` on the Redis server (as stored: prefixed)."""
    return sorted(
        key.decode("utf-8", "surrogateescape")
        for key in redis_client(alias).scan_iter(match=f"*{uid}*", count=1000)
    )


def made(alias, key):
    return write_driver(caches[alias]).made_key(key)


def many_instances(store, count, task="t_many"):
    with store.acquire_lock(ttl=30):
        store.update_configuration({task: {"after": ["never"], "run": "r"}})
        for number in range(count):
            store.create_instance(task, kwargs={"n": number})
        store.save()
    with store.acquire_lock(ttl=30):
        store.metadata["settled"] = True  # the first save's records reach their pages
        store.save()
    return store


def test_records_are_entries_of_pages(redis_cache, uid):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 70)
    keys = server_keys(redis_cache, uid)
    pages = [key for key in keys if ":p:" in key]
    assert len(pages) == -(-70 // PAGE_RECORDS)  # t_many#0 to #31 share the first, and so on
    assert not [key for key in keys if ":i:" in key]  # no record has a key of its own
    first = decode_page(pages[0], redis_client(redis_cache).get(pages[0]))
    assert sorted(first) == sorted(f"t_many#{n}" for n in range(PAGE_RECORDS))
    reader = fresh(store)
    assert {i.name: i.kwargs["n"] for i in reader} == {f"t_many#{n}": n for n in range(70)}
    assert reader.layout == "paged"


def test_a_save_changes_only_its_entries(redis_cache, uid):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    page_key = made(redis_cache, store.keys.page("t_many#1"))
    before = decode_page(page_key, redis_client(redis_cache).get(page_key))
    manager = TriggerManager(fresh(store))
    manager.update_instance_status("t_many#1", "failed")
    manager.update_instance_status("t_many#2", "abandoned")  # settles #1 into its page
    after = decode_page(page_key, redis_client(redis_cache).get(page_key))
    assert list(after) == list(before)  # same entries, same order
    assert [name for name in before if before[name] != after[name]] == ["t_many#1"]
    statuses = {i.name: i.status for i in fresh(store)}
    assert statuses["t_many#1"] == "failed" and statuses["t_many#2"] == "abandoned"


def test_awkward_instance_names(redis_cache, uid):
    store = CacheStorageBackend(uid, cache=redis_cache, layout="paged")
    with store.acquire_lock(ttl=30):
        store.update_configuration({name: {"after": ["never"], "run": "r"} for name in AWKWARD_NAMES})
        for name in AWKWARD_NAMES:
            store.create_instance(name, kwargs={"name": name})
        store.save()
    with store.acquire_lock(ttl=30):
        store.metadata["settled"] = True
        store.save()
    for key in server_keys(redis_cache, uid):
        assert not any(char.isspace() for char in key), key  # only entries hold such names
    assert {i.name: i.kwargs["name"] for i in fresh(store)} == {n + "#0": n for n in AWKWARD_NAMES}
    manager = TriggerManager(fresh(store))
    for name in AWKWARD_NAMES:
        manager.update_instance_status(name + "#0", "failed")
    assert {i.status for i in fresh(store)} == {"failed"}


def test_a_page_deleted_by_hand_is_incomplete(redis_cache, uid):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    page = store.keys.page("t_many#33")
    left = raw(redis_cache, [store.cache_key, store.witness_key])
    caches[redis_cache].delete(page)
    with pytest.raises(SessionIncomplete) as info:
        fresh(store).debug_repr()
    assert sorted(info.value.missing) == sorted(
        store.keys.page_entry(f"t_many#{n}") for n in range(32, 40)
    )
    assert uid in str(info.value)
    with pytest.raises(SessionIncomplete):
        TriggerManager(fresh(store)).update_instance_status("t_many#33", "failed")
    assert raw(redis_cache, [store.cache_key, store.witness_key]) == left  # nothing written


def damaged_pages(page_entries):
    """Page values damaged in several ways, from a page's valid entries."""
    valid = encode_entries(page_entries)
    name = next(iter(page_entries))
    flipped = dict(page_entries)
    flipped[name] = flipped[name][:-1] + bytes([flipped[name][-1] ^ 1])
    other = next(n for n in page_entries if n != name)
    swapped = dict(page_entries)
    swapped[name] = page_entries[other]  # another instance's record under this name
    return {
        "truncated": valid[:-3],
        "length past the end": valid[: len(PAGE_MARK)] + b"\xff\xff\xff\xff" + valid[len(PAGE_MARK) + 4 :],
        "no page": b"not a page at all {}:\n\x1b",
        "flipped bit": encode_entries(flipped),
        "record of another instance": encode_entries(swapped),
    }


@pytest.mark.parametrize(
    "damage",
    ["truncated", "length past the end", "no page", "flipped bit", "record of another instance"],
)
def test_a_damaged_page_is_refused_and_kept(redis_cache, uid, damage):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 8)
    client, page_key = redis_client(redis_cache), made(redis_cache, store.keys.page("t_many#0"))
    stored = damaged_pages(decode_page(page_key, client.get(page_key)))[damage]
    client.set(page_key, stored, px=60_000)
    with pytest.raises(StorageCorrupted) as info:
        fresh(store).debug_repr()
    assert uid in str(info.value)
    assert repr(store.keys.page_entry("t_many#0")) in str(info.value)  # the page, and the entry
    with pytest.raises(StorageCorrupted):
        TriggerManager(fresh(store)).update_instance_status("t_many#0", "failed")
    assert client.get(page_key) == stored  # the damage is left for an operator to see


def test_a_damaged_page_stops_the_save_that_would_merge_into_it(redis_cache, uid):
    """A save whose records settle into a damaged page writes nothing (the script
    checks every page before it writes)."""
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    manager = TriggerManager(fresh(store))
    manager.update_instance_status("t_many#0", "failed")  # its record waits in the head
    client, page_key = redis_client(redis_cache), made(redis_cache, store.keys.page("t_many#0"))
    client.set(page_key, b"damaged", px=60_000)
    head = client.get(made(redis_cache, store.cache_key))
    with pytest.raises(StorageCorrupted) as info:
        manager.update_instance_status("t_many#35", "failed")  # settles #0 into its page
    assert uid in str(info.value) and page_key in str(info.value)
    assert client.get(made(redis_cache, store.cache_key)) == head
    assert client.get(page_key) == b"damaged"


def test_the_commit_checks_a_handed_entry_in_its_page(redis_cache, uid):
    """What a Celery child starts from (a record handed, not read) is checked
    inside its page by the commit, as a record key of its own is."""
    driver = write_driver(caches[redis_cache])
    page = f"triggers.s:{{x}}{len(uid)}:{uid}:p:t#0"
    entry, other = f"{page}\nt#0", f"{page}\nt#1"
    record = PAGE_MARK[:-1] + b"r-handed"
    driver.write(Writes(({entry: record, other: PAGE_MARK[:-1] + b"r-other"},), timeout=60))

    def commit(handed):
        guard = CommitGuard(
            lock_key=f"{page}:lock",
            version_key=f"{page}:w",
            state_key=f"{page}:h",
            expected=None,
            read_back=(entry,),
            unchanged=((entry, handed),),
        )
        writes = Writes(({other: PAGE_MARK[:-1] + b"r-new"}, {f"{page}:h": b"h", f"{page}:w": 1}), 60)
        return driver.commit_if_unchanged(guard, writes)

    refused = commit(PAGE_MARK[:-1] + b"r-stale")
    assert refused.outcome is Outcome.CHANGED
    assert refused.values[entry] == record  # handed back for the retry, as stored
    assert driver.read_many([other])[other] == PAGE_MARK[:-1] + b"r-other"  # nothing written
    assert commit(record).outcome is Outcome.COMMITTED
    assert driver.read_many([entry, other]) == {entry: record, other: PAGE_MARK[:-1] + b"r-new"}


def test_delete_removes_the_pages(redis_cache, uid):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    assert [key for key in server_keys(redis_cache, uid) if ":p:" in key]
    assert fresh(store).delete()
    assert server_keys(redis_cache, uid) == []


@pytest.mark.parametrize("alias", ["locmem", "memcached", "db_sqlite", "db_pg"])
def test_refused_off_redis(request, alias):
    prepare_cache(request, alias)
    uid = "paged-" + uuid.uuid4().hex
    with pytest.raises(InvalidArgument) as info:
        CacheStorageBackend(uid, cache=alias, layout="paged")
    assert "'paged'" in str(info.value)
    assert type(caches[alias]).__name__ in str(info.value)
    assert info.value.argument == "layout"
    assert caches[alias].get(CacheStorageBackend.KEY_PREFIX + uid) is None


def test_the_setting_is_checked_against_the_cache(settings):
    from triggers.checks.caches import check_storage_cache

    settings.TRIGGERS_CACHE_LAYOUT = "paged"
    settings.TRIGGERS_CACHE_ALIAS = "locmem"
    errors = check_storage_cache()
    assert [e.id for e in errors] == ["triggers.E004"]
    assert "'paged'" in errors[0].msg and "LocMemCache" in errors[0].msg
    assert isinstance(errors[0], checks.Error)


def test_the_setting_passes_on_redis(settings, redis_cache):
    from triggers.checks.caches import check_storage_cache

    settings.TRIGGERS_CACHE_LAYOUT = "paged"
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    assert [e.id for e in check_storage_cache() if e.level >= checks.ERROR] == []


def test_entry_keys_split_at_the_first_newline():
    assert entry_address("a:p:t#0\nname\nwith\nlines") == ("a:p:t#0", "name\nwith\nlines")
    assert entry_address("a:i:plain") is None
    entries = {"x": RAW_MARK + b"1", "name\n{}": RAW_MARK, "\u00e9": RAW_MARK + b"\x00" * 3}
    assert decode_page("k", encode_entries(entries)) == entries
    with pytest.raises(TypeError, match="'plain'"):
        encode_entries({"plain": b"a value pickled by the cache"})


def test_timestamps_survive_a_page(redis_cache, uid):
    """Metadata of every pickled type a record may hold comes back from a page."""
    store = CacheStorageBackend(uid, cache=redis_cache, layout="paged")
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    with store.acquire_lock(ttl=30):
        store.update_configuration({"t": {"after": ["never"], "run": "r"}})
        store.create_instance("t", metadata={"when": when, "set": {1, 2}, "bytes": b"\n\x00"})
        store.save()
    with store.acquire_lock(ttl=30):
        store.metadata["settled"] = True
        store.save()
    assert fresh(store)["t#0"].metadata == {"when": when, "set": {1, 2}, "bytes": b"\n\x00"}


def test_no_page_expires_before_the_head(redis_cache, uid):
    """A merge sets its page's expiry anew, to the instant of the save's other
    keys: no page of a session outlives its head by less than nothing."""
    store = CacheStorageBackend(uid, cache=redis_cache, layout="paged", timeout=100)
    many_instances(store, 40)
    time.sleep(1.1)  # the next saves are a second later: no refresh
    manager = TriggerManager(fresh(store))
    manager.update_instance_status("t_many#1", "failed")
    manager.update_instance_status("t_many#39", "failed")  # #1 merged into the first page
    client = redis_client(redis_cache)
    head = client.ttl(made(redis_cache, store.cache_key))
    pages = {key: client.ttl(key) for key in server_keys(redis_cache, uid) if ":p:" in key}
    assert len(pages) == 2
    assert head >= 100 - 1, head
    assert min(pages.values()) >= head, (head, pages)


def test_saves_without_a_lock_merge_into_pages(redis_cache, uid):
    """``acquire_lock(ttl=False)`` writes with a script of its own, which merges
    the records into their pages as the others do."""
    store = CacheStorageBackend(uid, cache=redis_cache, layout="paged")
    for number in range(3):
        with store.acquire_lock(ttl=False):
            if number == 0:
                store.update_configuration({"t": {"after": ["never"], "run": "r"}})
            store.create_instance("t", kwargs={"n": number})
            store.save()
    with store.acquire_lock(ttl=False):
        store.metadata["settled"] = True
        store.save()
    [page] = [key for key in server_keys(redis_cache, uid) if ":p:" in key]
    assert sorted(decode_page(page, redis_client(redis_cache).get(page))) == ["t#0", "t#1", "t#2"]
    assert sorted(i.kwargs["n"] for i in fresh(store)) == [0, 1, 2]


def test_pages_of_names_that_look_numbered():
    """Which page a name goes to never fails: numbers of any length or digits
    that are not ASCII are names like any other."""
    from triggers.storages.cache.keys import page_of

    assert page_of("t#0") == page_of("t#31") != page_of("t#32")
    assert page_of("a#1#5") != page_of("a#5")
    for name in ["t#" + "9" * 5000, "t#\u00b2", "#5", "t#", "t#-1", "t# 1", "\n#\n"]:
        assert page_of(name).startswith("~"), name


def test_a_holder_that_slept_past_its_lock_merges_nothing(redis_cache, uid):
    """A save whose lock expired (and was taken by another) neither merges its
    records into their pages nor writes its head: LockLost, and the pages hold
    what the successor left."""
    import contextlib

    from triggers.errors import LockLost

    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    TriggerManager(fresh(store)).update_instance_status("t_many#2", "failed")  # in the head's delta
    late = fresh(store)
    stack = contextlib.ExitStack()
    stack.enter_context(late.acquire_lock(ttl=0.5))
    late["t_many#1"].status = "abandoned"  # its save would also merge #2 into the first page
    late.save()
    successor = fresh(store)
    with successor.acquire_lock(block=10):  # the late lock expired
        successor["t_many#3"].status = "failed"
        successor.save()
    client = redis_client(redis_cache)
    pages = {key: client.get(key) for key in server_keys(redis_cache, uid) if ":p:" in key}
    head = client.get(made(redis_cache, store.cache_key))
    with pytest.raises(LockLost):
        stack.close()
    assert {key: client.get(key) for key in pages} == pages
    assert client.get(made(redis_cache, store.cache_key)) == head
    statuses = {i.name: i.status for i in fresh(store)}
    assert (statuses["t_many#1"], statuses["t_many#2"], statuses["t_many#3"]) == (
        "unstarted",
        "failed",
        "failed",
    )
