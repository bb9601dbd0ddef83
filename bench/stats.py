"""Counting what a benchmark saw: latencies, losses, duplicates.

Pure logic, no I/O, so that tests/test_bench_harness.py can check it. Latency is
always measured from the *intended* send time of a message (its slot in the fixed
schedule), never from the moment the generator actually got round to sending it:
a stalled server then shows up as latency instead of silently slowing the load
down (no coordinated omission).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100), nearest-rank; None for no values."""
    data = sorted(values)
    if not data:
        return None
    if q <= 0:
        return data[0]
    rank = math.ceil(q / 100.0 * len(data))
    return data[min(len(data), max(1, rank)) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


@dataclass
class Ledger:
    """Every message one receiver is expected to get, and what it did get.

    `expect(key, intended)` before sending; `receive(key, at)` per arrival. A key
    received twice is a duplicate (counted, its latency not recorded again); a key
    never received is lost; a key received that was never expected is `unexpected`.
    """

    intended: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    duplicated: int = 0
    unexpected: int = 0

    def expect(self, key: str, intended: float) -> None:
        self.intended[key] = intended

    def receive(self, key: str, at: float) -> bool:
        """Record an arrival; True when it was the first copy of an expected key."""
        if key not in self.intended:
            self.unexpected += 1
            return False
        if key in self.arrived:
            self.duplicated += 1
            return False
        self.arrived[key] = at
        return True

    @property
    def expected(self) -> int:
        return len(self.intended)

    @property
    def delivered(self) -> int:
        return len(self.arrived)

    @property
    def lost(self) -> int:
        return len(self.intended) - len(self.arrived)

    def missing(self) -> list[str]:
        return [key for key in self.intended if key not in self.arrived]

    def latencies(self) -> list[float]:
        return [at - self.intended[key] for key, at in self.arrived.items()]

    def complete(self) -> bool:
        return len(self.arrived) == len(self.intended)


def merge(ledgers: Iterable[Ledger]) -> dict[str, float | int | None]:
    """Totals and latency percentiles over several receivers' ledgers."""
    lat: list[float] = []
    expected = delivered = duplicated = unexpected = 0
    for ledger in ledgers:
        lat.extend(ledger.latencies())
        expected += ledger.expected
        delivered += ledger.delivered
        duplicated += ledger.duplicated
        unexpected += ledger.unexpected
    return {
        "expected": expected,
        "delivered": delivered,
        "lost": expected - delivered,
        "duplicated": duplicated,
        "unexpected": unexpected,
        "p50_ms": ms(percentile(lat, 50)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(max(lat) if lat else None),
    }


def schedule(rate: float, senders: int, duration: float) -> list[list[float]]:
    """The fixed open-loop schedule: for each sender, its send offsets (seconds).

    The aggregate rate is `rate`; sender i sends every senders/rate seconds, phase
    shifted by i/rate so that the senders interleave evenly.
    """
    if rate <= 0 or senders <= 0 or duration <= 0:
        return [[] for _ in range(max(senders, 0))]
    total = round(rate * duration)
    slots: list[list[float]] = [[] for _ in range(senders)]
    for k in range(total):
        slots[k % senders].append(k / rate)
    return slots


def holds(point: dict, *, p99_limit_ms: float = 50.0) -> bool:
    """A sweep point passes when everything arrived exactly once, p99 within the limit."""
    p99 = point.get("p99_ms")
    return (
        point.get("lost", 1) == 0
        and point.get("duplicated", 1) == 0
        and point.get("pending", 0) == 0
        and p99 is not None
        and p99 <= p99_limit_ms
    )


def max_rate(points: list[dict], *, p99_limit_ms: float = 50.0) -> float:
    """The highest offered rate that held (0 when none did)."""
    held = [p["rate"] for p in points if holds(p, p99_limit_ms=p99_limit_ms)]
    return max(held) if held else 0.0
