"""Work of your own under a triggers lock (docs/locking.rst)."""

from django.core.cache import caches

from triggers.locking import LockAcquisitionFailed, acquire_lock


def add_to_total(amount, cache="default"):
    """Add to a running total kept in the cache; no two processes at once."""
    # Wait up to 5 s for the lock; if this process dies holding it, it goes in 30 s.
    with acquire_lock("billing:total:lock", ttl=30, cache=cache, block=5):
        store = caches[cache]
        total = store.get("billing:total", 0) + amount
        store.set("billing:total", total, timeout=None)
        return total


def send_daily_report(send, cache="default"):
    """Call ``send()`` unless another process is sending the report now."""
    try:
        with acquire_lock("billing:daily-report:lock", ttl=600, cache=cache, block=False):
            send()
            return True
    except LockAcquisitionFailed:
        return False
