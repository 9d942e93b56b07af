"""Session state in a Django cache: :class:`CacheStorageBackend` and its parts.

Layouts. Triggers 2.x kept a whole session in one value, so every fire
read and rewrote every instance. The default "split" layout
(:mod:`.split`) keeps a small head under the 2.x key, the task table under
a key named by its version (:mod:`.tables`), and each instance under a key
of its own (:mod:`.keys`), so a fire reads and writes only what it
touches. The "single" layout (:mod:`.single`) writes the 2.x value, for
rolling upgrades; both layouts read both. Where the cache can commit
conditionally, operations first run without the lock (:mod:`.commit`).
"""

from .backend import CacheStorageBackend
from .formats import LAYOUT_PAGED, LAYOUT_SINGLE, LAYOUT_SPLIT, LAYOUTS

__all__ = ["LAYOUTS", "LAYOUT_PAGED", "LAYOUT_SINGLE", "LAYOUT_SPLIT", "CacheStorageBackend"]
