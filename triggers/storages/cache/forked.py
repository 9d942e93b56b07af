"""What the processes forked from one parent share about sessions: whose turn
it is to commit to one, and the state each was last committed in.

The children of a Celery prefork worker (or of any server that forks its
workers) are separate processes: each knows only what it committed itself,
so two of them taking turns on one session's tasks each commit from a state
the other has replaced, and are refused once. A file in memory, made before
they are forked (a memfd; a temporary file where there is none), carries for
each stripe of sessions a turn (an fcntl lock on one byte, which the kernel
lets go when its process dies) and a slot holding the state one session was
last committed in. Both are hints: a try waits for its turn a few
milliseconds at most, and a slot found torn, stale or of another session is
not used, so the worst they cost is what their absence costs, one refused
commit, since every commit is checked against the head and witness stored.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import struct
import tempfile
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - no fcntl (Windows): nothing is shared
    fcntl = None  # type: ignore[assignment]

__all__ = ["ForkShared", "identity_digest", "stripe_of"]

#: stripes of sessions (each a turn and a slot)
STRIPES = 256
#: the bytes of one slot: a header, then the pickled state (larger states are not shared)
SLOT_SIZE = 32 * 1024
#: the longest a try waits for its turn before it goes ahead without it
TURN_WAIT = 0.02
#: the pause between two looks at a turn another process holds
TURN_POLL = 0.0002
#: a slot's header: the session's digest, the state's digest and its length
_HEADER = struct.Struct(">16s16sI")
_BUSY = (errno.EACCES, errno.EAGAIN)


def identity_digest(identity: object) -> bytes:
    """A digest naming a session the same way in every process (``hash()`` of
    a string differs from one interpreter to the next)."""
    return hashlib.blake2b(repr(identity).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def stripe_of(digest: bytes, stripes: int = STRIPES) -> int:
    """The stripe of the session whose identity digest is ``digest``."""
    return int.from_bytes(digest[:4], "big") % stripes


def _state_digest(payload: bytes | memoryview) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


def _shared_file(size: int) -> int:
    """A file descriptor of ``size`` bytes of memory, for this process and its forks
    (OSError where none can be made, or turns cannot be taken on it)."""
    if fcntl is None:  # pragma: no cover - Windows
        raise OSError(errno.ENOSYS, "no fcntl locks on this platform")
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("triggers-committed", os.MFD_CLOEXEC)
    else:  # pragma: no cover - platforms without memfd
        with tempfile.TemporaryFile() as unnamed:
            fd = os.dup(unnamed.fileno())
    os.ftruncate(fd, size)
    return fd


class ForkShared:
    """Turns and last committed states, shared with the processes forked from this one."""

    def __init__(self, stripes: int = STRIPES, slot_size: int = SLOT_SIZE) -> None:
        self.stripes = stripes
        self._slot_size = slot_size
        self._fd = _shared_file(stripes * slot_size)
        self._map = mmap.mmap(self._fd, stripes * slot_size)

    def stripe(self, digest: bytes) -> int:
        """The stripe of the session whose identity digest is ``digest``."""
        return stripe_of(digest, self.stripes)

    # ----------------------------------------------------------------- turns
    def take_turn(self, stripe: int, wait: float = TURN_WAIT) -> bool:
        """Take the stripe's turn from the other processes, waiting at most
        ``wait`` seconds; False when another held it all that time."""
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, stripe)
                return True
            except OSError as exc:
                if exc.errno not in _BUSY or time.monotonic() >= deadline:
                    return False
            time.sleep(TURN_POLL)

    def end_turn(self, stripe: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, stripe)

    # ----------------------------------------------------------------- slots
    def load(self, digest: bytes) -> bytes | None:
        """The state stored for the session ``digest`` names, if its slot holds
        that session whole (a slot being written, or of another session: None)."""
        base = self.stripe(digest) * self._slot_size
        owner, state_digest, length = _HEADER.unpack_from(self._map, base)
        if owner != digest or not 0 < length <= self._slot_size - _HEADER.size:
            return None
        start = base + _HEADER.size
        payload = self._map[start : start + length]
        return payload if _state_digest(payload) == state_digest else None

    def store(self, digest: bytes, payload: bytes) -> None:
        """Keep ``payload`` as the session's state (a state too large empties the slot)."""
        base = self.stripe(digest) * self._slot_size
        room = self._slot_size - _HEADER.size
        _HEADER.pack_into(self._map, base, bytes(16), bytes(16), 0)  # being written
        if len(payload) > room:
            return
        start = base + _HEADER.size
        self._map[start : start + len(payload)] = payload
        _HEADER.pack_into(self._map, base, digest, _state_digest(payload), len(payload))

    def drop(self, digest: bytes) -> None:
        """Empty the slot if it holds that session."""
        base = self.stripe(digest) * self._slot_size
        if _HEADER.unpack_from(self._map, base)[0] == digest:
            _HEADER.pack_into(self._map, base, bytes(16), bytes(16), 0)

    def clear(self) -> None:
        """Empty every slot."""
        for stripe in range(self.stripes):
            _HEADER.pack_into(self._map, stripe * self._slot_size, bytes(16), bytes(16), 0)
