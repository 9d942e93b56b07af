"""A cache object that is no BaseCache is taken only if it behaves as one."""

from __future__ import annotations

import pytest

from triggers import CacheStorageBackend
from triggers.errors import InvalidArgument
from triggers.locking.lock import resolve_cache


class HalfACache:
    default_timeout = 300

    def get(self, key, default=None):
        return default


@pytest.mark.parametrize("value", [HalfACache(), HalfACache, object(), 3])
def test_what_does_not_behave_as_a_cache_is_refused_by_name(value, uid):
    with pytest.raises(InvalidArgument, match="cache"):
        CacheStorageBackend(uid, cache=value)
    with pytest.raises(TypeError, match="expected a cache alias or a Django cache object"):
        resolve_cache(value)
