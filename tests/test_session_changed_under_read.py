"""A read that finds records missing because the session stored changed under
it (a failover to a server that lacked the head it read, a delete and a new
session) is told to read again, not that the session is damaged."""

import pytest
from django.core.cache import caches

from triggers import CacheStorageBackend
from triggers.errors import BackendUnavailable, SessionIncomplete

from .storage_support import fresh, populate


@pytest.fixture
def split_session(any_cache, uid):
    """A populated split session, and a reader that has read its head only."""
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout="split"))
    names = sorted(store.instances)
    reader = fresh(store)
    assert sorted(reader.instances) == names  # the head's index, no record read yet
    return store, reader, names


def test_records_gone_with_the_session_replaced_ask_for_a_new_read(split_session, any_cache, uid):
    store, reader, names = split_session
    assert fresh(store).delete()
    # A new session under the same uid, its generation not the one the reader read.
    populate(CacheStorageBackend(uid, cache=any_cache, layout="split"))
    replaced = fresh(store)
    for name in replaced.instances:  # the new session's records go: only the head is left
        caches[any_cache].delete(replaced.record_key(name))
    with pytest.raises(BackendUnavailable) as info:
        reader[names[0]]
    assert not isinstance(info.value, SessionIncomplete)
    assert uid in str(info.value) and "read it again" in str(info.value)
    # Read again, the session as it now stands is judged: incomplete.
    with pytest.raises(SessionIncomplete):
        fresh(store)[names[0]]


def test_records_gone_from_the_session_read_is_incomplete(split_session, any_cache):
    """The same state as read, records evicted: the session is damaged."""
    store, reader, names = split_session
    caches[any_cache].delete(store.record_key(names[0]))
    with pytest.raises(SessionIncomplete) as info:
        reader[names[0]]
    assert info.value.missing == [store.record_key(names[0])]
