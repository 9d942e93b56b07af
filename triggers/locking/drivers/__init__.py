"""Lock drivers, one module per kind of cache: :mod:`.add` (an atomic ``add``:
LocMem, Memcached), :mod:`.redis` (with its scripts in :mod:`.redis_scripts`)
and :mod:`.database` (Django's database cache); :mod:`.base` says what a
driver is."""
