"""The fault suite: real faults (processes paused and killed, connections
dropped and stalled through a proxy, damaged values, servers short of memory,
generated bad input) against real caches. Slow, so it runs in ``tox -e faults``."""
