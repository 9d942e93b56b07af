"""The Lua scripts the Redis lock driver runs: each one round trip, atomic on the server.

``RELEASE``: delete the lock only if it holds the token (KEYS: lock; ARGV: token).
``ACQUIRE_AND_READ``: SET NX (PX when ARGV[2] > 0) and, if taken, read the
other keys (KEYS: lock, keys to read; ARGV: token, px).
``WRITE_AND_RELEASE``: only while the lock holds the token, set every other
key and, if ARGV[3] is '1', delete the lock (KEYS: lock, keys; ARGV: token,
px, release flag, values).
``COMMIT_IF_UNCHANGED``: only while no lock is held, the version key holds
the expected value (ARGV[1]; '' for "neither it nor the state key exists"),
if ARGV[5] is not '', the state key's SHA-1 is ARGV[5], and each of the
ARGV[7] checked keys holds a value of the SHA-1 given for it, set the
version (ARGV[3]), the state (ARGV[4]) and the other keys; returns {2} when
written, {0} when locked, {1, version, state, read back...} when changed:
the last ARGV[6] keys are only read then, so a retry needs no other read
(KEYS: lock, version, state, keys, checked keys, keys to read back; ARGV:
expected, px, version, state, state SHA-1, count read back, count checked,
values, checked SHA-1s).
"""

from __future__ import annotations

import functools
import hashlib

__all__ = [
    "ACQUIRE_AND_READ",
    "ACQUIRE_BOTH_AND_READ",
    "COMMIT_IF_UNCHANGED",
    "RELEASE",
    "RELEASE_BOTH",
    "WRITE_AND_RELEASE",
    "WRITE_AND_RELEASE_BOTH",
    "digest",
]

RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


ACQUIRE_AND_READ = """
local px = tonumber(ARGV[2])
local taken
if px > 0 then
    taken = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', px)
else
    taken = redis.call('set', KEYS[1], ARGV[1], 'NX')
end
if not taken then
    return false
end
local result = {1}
for i = 2, #KEYS do
    result[i] = redis.call('get', KEYS[i])
end
return result
"""

WRITE_AND_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
local px = tonumber(ARGV[2])
for i = 2, #KEYS do
    if px > 0 then
        redis.call('set', KEYS[i], ARGV[i + 2], 'PX', px)
    else
        redis.call('set', KEYS[i], ARGV[i + 2])
    end
end
if ARGV[3] == '1' then
    redis.call('del', KEYS[1])
end
return 1
"""


COMMIT_IF_UNCHANGED = """
if redis.call('exists', KEYS[1]) == 1 then
    return {0}
end
local version = redis.call('get', KEYS[2])
local same
if ARGV[1] == '' then
    same = (not version) and redis.call('exists', KEYS[3]) == 0
else
    same = version == ARGV[1]
end
local state = false
if same and ARGV[5] ~= '' then
    state = redis.call('get', KEYS[3])
    same = state and redis.sha1hex(state) == ARGV[5]
end
local back = tonumber(ARGV[6])
local checked = tonumber(ARGV[7])
local last_write = #KEYS - back - checked
for j = 1, checked do
    if not same then
        break
    end
    local held = redis.call('get', KEYS[last_write + j])
    same = held and redis.sha1hex(held) == ARGV[last_write + 4 + j]
end
if not same then
    local changed = {1, version, state or redis.call('get', KEYS[3])}
    for i = #KEYS - back + 1, #KEYS do
        changed[#changed + 1] = redis.call('get', KEYS[i])
    end
    return changed
end
local px = tonumber(ARGV[2])
local function put(key, value)
    if px > 0 then
        redis.call('set', key, value, 'PX', px)
    else
        redis.call('set', key, value)
    end
end
if ARGV[3] ~= '' then
    put(KEYS[2], ARGV[3])
end
if ARGV[4] ~= '' then
    put(KEYS[3], ARGV[4])
end
for i = 4, last_write do
    put(KEYS[i], ARGV[i + 4])
end
return {2}
"""


@functools.cache
def digest(source: str) -> str:
    """The SHA-1 digest Redis knows a script by (EVALSHA)."""
    return hashlib.sha1(source.encode("utf-8")).hexdigest()


# The same, for the single layout during a rolling upgrade from Triggers 2.x:
# a second lock key, the one 2.x takes with python-redis-lock (no Django key
# prefix, its holder's token as is, EX seconds), is taken and let go together
# with this package's own, and letting it go wakes 2.x waiters the way
# python-redis-lock does (its signal list emptied, then pushed once, and
# gone a second later).

#: KEYS: lock, 2.x lock, keys to read; ARGV: token, px, 2.x token, 2.x ex seconds
ACQUIRE_BOTH_AND_READ = """
if redis.call('exists', KEYS[1]) == 1 or redis.call('exists', KEYS[2]) == 1 then
    return false
end
local px = tonumber(ARGV[2])
if px > 0 then
    redis.call('set', KEYS[1], ARGV[1], 'PX', px)
else
    redis.call('set', KEYS[1], ARGV[1])
end
local ex = tonumber(ARGV[4])
if ex > 0 then
    redis.call('set', KEYS[2], ARGV[3], 'EX', ex)
else
    redis.call('set', KEYS[2], ARGV[3])
end
local result = {1}
for i = 3, #KEYS do
    result[i - 1] = redis.call('get', KEYS[i])
end
return result
"""

#: KEYS: lock, 2.x lock, 2.x signal; ARGV: token, 2.x token
RELEASE_BOTH = """
if redis.call('get', KEYS[2]) == ARGV[2] then
    redis.call('del', KEYS[3])
    redis.call('lpush', KEYS[3], 1)
    redis.call('pexpire', KEYS[3], 1000)
    redis.call('del', KEYS[2])
end
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

#: KEYS: lock, 2.x lock, 2.x signal, keys; ARGV: token, px, release flag, 2.x token, values
WRITE_AND_RELEASE_BOTH = """
if redis.call('get', KEYS[1]) ~= ARGV[1] or redis.call('get', KEYS[2]) ~= ARGV[4] then
    return 0
end
local px = tonumber(ARGV[2])
for i = 4, #KEYS do
    if px > 0 then
        redis.call('set', KEYS[i], ARGV[i + 1], 'PX', px)
    else
        redis.call('set', KEYS[i], ARGV[i + 1])
    end
end
if ARGV[3] == '1' then
    redis.call('del', KEYS[3])
    redis.call('lpush', KEYS[3], 1)
    redis.call('pexpire', KEYS[3], 1000)
    redis.call('del', KEYS[2])
    redis.call('del', KEYS[1])
end
return 1
"""
