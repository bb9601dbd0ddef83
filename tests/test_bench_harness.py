"""The benchmark harness's counting logic (bench/stats.py): plain, fast, no servers."""

import itertools

import pytest

from bench.stats import Ledger, holds, max_rate, merge, percentile, schedule


def test_ledger_counts_losses_duplicates_and_strangers():
    ledger = Ledger()
    for n in range(5):
        ledger.expect(f"m{n}", intended=10.0 + n)
    assert ledger.receive("m0", 10.5)
    assert ledger.receive("m1", 11.25)
    assert not ledger.receive("m1", 11.5)  # a second copy
    assert not ledger.receive("zz", 12.0)  # never sent
    assert ledger.receive("m4", 14.1)
    assert (ledger.delivered, ledger.lost, ledger.duplicated, ledger.unexpected) == (3, 2, 1, 1)
    assert sorted(ledger.missing()) == ["m2", "m3"]
    assert not ledger.complete()


def test_latency_is_measured_from_the_intended_send_time():
    ledger = Ledger()
    ledger.expect("late", intended=100.0)
    # However late the generator got round to sending, the clock started at 100.0.
    ledger.receive("late", 100.75)
    assert ledger.latencies() == [pytest.approx(0.75)]


def test_duplicate_does_not_overwrite_first_arrival():
    ledger = Ledger()
    ledger.expect("a", intended=0.0)
    ledger.receive("a", 0.01)
    ledger.receive("a", 5.0)
    assert ledger.latencies() == [pytest.approx(0.01)]


def test_merge_totals_over_receivers():
    one, two = Ledger(), Ledger()
    one.expect("a", 0.0)
    one.expect("b", 0.0)
    two.expect("c", 0.0)
    one.receive("a", 0.002)
    two.receive("c", 0.004)
    two.receive("c", 0.005)
    totals = merge([one, two])
    assert totals["expected"] == 3
    assert totals["delivered"] == 2
    assert totals["lost"] == 1
    assert totals["duplicated"] == 1
    assert totals["p50_ms"] == pytest.approx(2.0)
    assert totals["p99_ms"] == pytest.approx(4.0)


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([], 99) is None


def test_schedule_is_fixed_and_interleaved():
    slots = schedule(rate=100, senders=4, duration=1.0)
    assert sum(len(s) for s in slots) == 100
    assert slots[0][:2] == [0.0, pytest.approx(0.04)]
    assert slots[1][0] == pytest.approx(0.01)
    every = sorted(t for s in slots for t in s)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(every)}
    assert gaps == {0.01}


def test_max_rate_requires_no_loss_no_pending_and_p99_within_limit():
    points = [
        {"rate": 100, "p99_ms": 10, "lost": 0, "duplicated": 0, "pending": 0},
        {"rate": 200, "p99_ms": 40, "lost": 0, "duplicated": 0, "pending": 0},
        {"rate": 400, "p99_ms": 45, "lost": 3, "duplicated": 0, "pending": 0},
        {"rate": 800, "p99_ms": 30, "lost": 0, "duplicated": 0, "pending": 9},
        {"rate": 1600, "p99_ms": 70, "lost": 0, "duplicated": 0, "pending": 0},
    ]
    assert max_rate(points) == 200
    assert not holds({"rate": 1, "p99_ms": None, "lost": 0, "duplicated": 0})
    assert max_rate([]) == 0
