"""What a session's witness holds: the generation of its last save and a token of that save.

A process that commits without the lock remembers the witness it last
wrote and commits only while the stored witness equals it. A generation
alone is not enough: it starts again when a session's keys are deleted or
expire, and goes back when the cache loses writes (a restart from an older
snapshot, a failover to a replica that lagged), so a different state could
carry the number a process remembers. Each save therefore draws a random
64-bit token and stores ``generation << 64 | token``: one int, which every
cache client stores as a plain number, that no other save writes again.
"""

from __future__ import annotations

import secrets
from typing import TypeGuard

__all__ = ["TOKEN_BITS", "generation_of", "is_version", "new_version"]

#: bits of a witness below its generation: the save's random token
TOKEN_BITS = 64


def new_version(generation: int) -> int:
    """A witness for a save of ``generation``, unique to that save."""
    return (generation << TOKEN_BITS) | secrets.randbits(TOKEN_BITS)


def is_version(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a witness as this package writes it."""
    return type(value) is int and value >= 0


def generation_of(value: object) -> int:
    """The generation a witness carries (0 for none or anything else)."""
    return value >> TOKEN_BITS if is_version(value) else 0
