"""The sliding-window rate limit as a Lua function, for the Redis scripts that take a slot.

The gateway's limiter and the hub broker's admission both count calls in one sorted set
per key (members scored by Redis ``TIME`` in microseconds). Each builds its script from
``SLIDING_WINDOW`` plus its own few lines, so the algorithm lives once while each script
keeps its own reply shape, and the broker's admission stays one script (one round trip).
"""

from __future__ import annotations

#: Defines ``sliding_window(key, limit, window, member)`` (``window`` in microseconds).
#: Drops the entries older than the window, then takes a slot (adds ``member``) if fewer
#: than ``limit`` remain. Returns ``taken, remaining, wait``: whether the slot was taken,
#: the slots left after it, and the microseconds until the oldest entry leaves the window
#: (when a slot frees up; with a slot taken, when the window resets). The server's clock,
#: not the callers': every replica agrees on the window.
SLIDING_WINDOW = """
local function sliding_window(key, limit, window, member)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if count < limit then
    redis.call('ZADD', key, now, member)
    -- Idle keys expire a second after their window.
    redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1000)
    local first = now
    if oldest[2] then first = tonumber(oldest[2]) end
    return true, limit - count - 1, first + window - now
  end
  return false, 0, tonumber(oldest[2]) + window - now
end
"""
