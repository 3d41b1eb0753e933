"""Counters behind the app's rate limits, kept in the cache every process shares.

In production the cache is Redis (settings refuse to start without ``REDIS_URL`` when ``DEBUG`` is
off), so every gunicorn worker, container and host counts into the same number and a limit of 20
refuses the 21st attempt whichever process answers it. Without Redis, in development only, each
process counts on its own. Each counter's window starts at its first count and lasts
``window_seconds``; the key expires with it.
"""

from __future__ import annotations

from django.core.cache import cache


def rate_limit_count(key: str) -> int:
    """How many times ``key`` was counted in its current window (0 when none is open)."""
    return cache.get(key, 0)


def rate_limit_increment(key: str, *, window_seconds: int) -> int:
    """Count one more for ``key`` and return the new count. ``add`` then ``incr`` are each atomic
    on Redis, so processes counting at once never lose a count."""
    for _attempt in range(2):
        cache.add(key, 0, timeout=window_seconds)
        try:
            return cache.incr(key)
        except ValueError:
            # The window ended between add() and incr(): start a new one.
            continue
    return rate_limit_count(key)


def rate_limit_reached(key: str, *, limit: int) -> bool:
    return rate_limit_count(key) >= limit
