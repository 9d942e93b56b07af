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
values, checked SHA-1s: of a page's entry, the SHA-1 and then its name).
``WRITE``: set every key, without a lock (KEYS: keys; ARGV: px, values).
Where a value is a patch, the scripts that write merge it into its page
(see :mod:`triggers.locking.pages`).
"""

from __future__ import annotations

import functools
import hashlib

from ..pages import DAMAGED_PAGE, PAGE_MARK, PATCH_MARK

__all__ = [
    "ACQUIRE_AND_READ",
    "ACQUIRE_BOTH_AND_READ",
    "COMMIT_IF_UNCHANGED",
    "RELEASE",
    "RELEASE_BOTH",
    "WRITE",
    "WRITE_AND_RELEASE",
    "WRITE_AND_RELEASE_BOTH",
    "digest",
]

def _lua_bytes(data: bytes) -> str:
    """``data`` as a Lua string literal (every byte escaped: marks hold NUL)."""
    return '"' + "".join(f"\\{byte:03d}" for byte in data) + '"'


# Pages (see triggers.locking.pages), shared by the scripts that write: a
# value that starts with PATCH_MARK is merged into the page stored under its
# key (its entries replace those of the same name, others are added), and a
# checked SHA-1 followed by a name is that of the page's entry of that name.
# Every value is settled before anything is written, so a damaged page stops
# the script before it writes.
_PAGES = f"""
local PAGE_MARK = {_lua_bytes(PAGE_MARK)}
local PATCH_MARK = {_lua_bytes(PATCH_MARK)}
local function read_entries(blob, at, names, values)
    local size = #blob
    while at <= size do
        if at + 3 > size then
            return false
        end
        local name_end = at + 3 + struct.unpack('>I4', blob, at)
        if name_end + 4 > size then
            return false
        end
        local value_end = name_end + 4 + struct.unpack('>I4', blob, name_end + 1)
        if value_end > size then
            return false
        end
        local name = string.sub(blob, at + 4, name_end)
        if values[name] == nil then
            names[#names + 1] = name
        end
        values[name] = string.sub(blob, name_end + 5, value_end)
        at = value_end + 1
    end
    return true
end
local function page_entries(stored, names, values)
    return string.sub(stored, 1, #PAGE_MARK) == PAGE_MARK
        and read_entries(stored, #PAGE_MARK + 1, names, values)
end
local function entry_of(stored, name)
    local values = {{}}
    if not stored or not page_entries(stored, {{}}, values) then
        return false
    end
    return values[name] or false
end
local function stored_value(key, value)
    if string.sub(value, 1, #PATCH_MARK) ~= PATCH_MARK then
        return value
    end
    local names, values = {{}}, {{}}
    local stored = redis.call('get', key)
    if stored and not page_entries(stored, names, values) then
        error({{err = '{DAMAGED_PAGE} ' .. key}})
    end
    read_entries(value, #PATCH_MARK + 1, names, values)
    local parts = {{PAGE_MARK}}
    for i = 1, #names do
        local name, entry = names[i], values[names[i]]
        parts[i + 1] = struct.pack('>I4', #name) .. name .. struct.pack('>I4', #entry) .. entry
    end
    return table.concat(parts)
end
local function settled_values(first, last, offset)
    local values = {{}}
    for i = first, last do
        values[i] = stored_value(KEYS[i], ARGV[i + offset])
    end
    return values
end
local function put(key, value, px)
    if px > 0 then
        redis.call('set', key, value, 'PX', px)
    else
        redis.call('set', key, value)
    end
end
"""

#: KEYS: keys; ARGV: px, values (a write made without a lock: the ttl=False stand-in)
WRITE = _PAGES + """
local values = settled_values(1, #KEYS, 1)
local px = tonumber(ARGV[1])
for i = 1, #KEYS do
    put(KEYS[i], values[i], px)
end
return 1
"""

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

WRITE_AND_RELEASE = _PAGES + """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
local values = settled_values(2, #KEYS, 2)
local px = tonumber(ARGV[2])
for i = 2, #KEYS do
    put(KEYS[i], values[i], px)
end
if ARGV[3] == '1' then
    redis.call('del', KEYS[1])
end
return 1
"""


COMMIT_IF_UNCHANGED = _PAGES + """
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
    local expected = ARGV[last_write + 4 + j]
    local held = redis.call('get', KEYS[last_write + j])
    if #expected > 40 then
        held = entry_of(held, string.sub(expected, 41))
    end
    same = held and redis.sha1hex(held) == string.sub(expected, 1, 40)
end
if not same then
    local changed = {1, version, state or redis.call('get', KEYS[3])}
    for i = #KEYS - back + 1, #KEYS do
        changed[#changed + 1] = redis.call('get', KEYS[i])
    end
    return changed
end
local values = settled_values(4, last_write, 4)
local px = tonumber(ARGV[2])
if ARGV[3] ~= '' then
    put(KEYS[2], ARGV[3], px)
end
if ARGV[4] ~= '' then
    put(KEYS[3], ARGV[4], px)
end
for i = 4, last_write do
    put(KEYS[i], values[i], px)
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
