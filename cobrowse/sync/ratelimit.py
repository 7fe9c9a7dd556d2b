"""Token buckets (pure): per-connection frame rates and share-code guessing."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens a second, up to ``burst``; ``take()`` is False when empty."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def delay(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``take(cost)`` would succeed (0 if it would now)."""
        self.take(now, 0.0)  # refill
        return max(0.0, (cost - self.tokens) / self.rate)


class KeyedLimiter:
    """One bucket per key (an agent, an address), forgotten once full again."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def refund(self, key: str) -> None:
        """Give back what allow() took (a login that succeeded is no guess)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(bucket.burst, bucket.tokens + 1)

    def sweep(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * b.rate >= b.burst]
        for key in full:
            del self._buckets[key]
