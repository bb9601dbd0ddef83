"""The load generator: one scenario against one system, result as JSON on stdout.

Runs in its own process, pinned by the orchestrator (bench/run.py) to a CPU apart
from the server's. Open-loop scenarios send on a fixed schedule and measure every
latency from the message's *intended* send time; closed-loop ones say so.

    python -m bench.loadgen '{"scenario": "direct_sweep", "system": "bare_relay", ...}'
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis
from websockets.exceptions import ConnectionClosed

from bench import clients
from bench.clients import Conn, System, open_conn
from bench.stats import Ledger, merge, ms, percentile, schedule

perf = time.perf_counter


def _tag() -> str:
    return f"b{os.getpid():x}{int(time.time() * 1000) % 10_000_000:x}"


def _lat_summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50_ms": ms(percentile(values, 50)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values) if values else None),
    }


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu_times() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu") and line[3].isdigit():
                name, *fields = line.split()
                values = [int(v) for v in fields]
                idle = values[3] + values[4]
                out[name] = (sum(values) - idle, sum(values))
    return out


def _proc_jiffies(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


class CpuMeter:
    """How busy each core was, and how much of it the server and we ourselves used.

    `other_cpuN` is the busy share of core N not used by the pinned server (CPU 0)
    or the load generator (CPU 1): PostgreSQL, Redis, and anyone else's work.
    """

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.cpu = _cpu_times()
        self.server = _proc_jiffies(server_pid) if server_pid else 0
        self.me = _proc_jiffies(os.getpid())

    def read(self) -> dict[str, float]:
        cpu = _cpu_times()
        out: dict[str, float] = {}
        spans = {}
        for name in ("cpu0", "cpu1"):
            if name in cpu and name in self.cpu:
                busy = cpu[name][0] - self.cpu[name][0]
                total = max(cpu[name][1] - self.cpu[name][1], 1)
                spans[name] = (busy, total)
        server = (_proc_jiffies(self.server_pid) - self.server) if self.server_pid else 0
        me = _proc_jiffies(os.getpid()) - self.me
        if "cpu0" in spans:
            busy, total = spans["cpu0"]
            out["server_cpu"] = round(server / total, 2)
            out["other_cpu0"] = round(max(busy - server, 0) / total, 2)
        if "cpu1" in spans:
            busy, total = spans["cpu1"]
            out["loadgen_cpu"] = round(me / total, 2)
            out["other_cpu1"] = round(max(busy - me, 0) / total, 2)
        return out


# A point whose sends left this much later than scheduled (p99) measured a starved
# load generator, not the server: it is run again once (see run_point_checked).
LAG_LIMIT_MS = 20.0
SERVER_PID: int | None = None


async def gather_limited(factories: list, limit: int) -> list:
    sem = asyncio.Semaphore(limit)

    async def run(factory):
        async with sem:
            return await factory()

    return await asyncio.gather(*(run(f) for f in factories), return_exceptions=True)


# --- pairs of sockets (1:1) ----------------------------------------------------


@dataclass
class Pair:
    a: Conn
    b: Conn
    room: Any


async def open_pairs(system: System, setup: dict | None, count: int) -> list[Pair]:
    def factory(i: int):
        async def make() -> Pair:
            if system.persistent:
                spec = setup["pairs"][i]
                a = await open_conn(system, token=spec["a"])
                b = await open_conn(system, token=spec["b"])
                return Pair(a, b, spec["conv"])
            room = f"p{i}"
            a = await open_conn(system, room=room)
            b = await open_conn(system, room=room)
            return Pair(a, b, room)

        return make

    pairs = await gather_limited([factory(i) for i in range(count)], 25)
    failed = [p for p in pairs if isinstance(p, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} pairs failed to connect: {failed[0]!r}")
    return pairs


async def run_point(
    system: System,
    pairs: list[Pair],
    rate: float,
    hold: float,
    *,
    drain_cap: float,
    idle_gap: float = 2.0,
) -> dict[str, Any]:
    """Open loop at `rate` msg/s over all pairs for `hold` s, then drain."""
    tag = _tag()
    slots = schedule(rate, len(pairs), hold)
    for pair in pairs:
        pair.b.ledger = Ledger()
        pair.a.acks = Ledger() if system.persistent else None
        pair.a.outbox = {} if system.persistent else None
        pair.a.resent = 0
        pair.a.errors.clear()
    lags: list[float] = []
    send_failed = 0
    meter = CpuMeter(SERVER_PID)
    t0 = perf() + 0.2

    async def sender(i: int, pair: Pair) -> None:
        nonlocal send_failed
        for j, offset in enumerate(slots[i]):
            intended = t0 + offset
            delay = intended - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            key = f"{tag}.{i}.{j}"
            pair.b.ledger.expect(key, intended)
            if pair.a.acks is not None:
                pair.a.acks.expect(key, intended)
            lags.append(perf() - intended)
            try:
                await pair.a.send(system.encode(pair.room, key), key)
            except ConnectionClosed:
                send_failed += len(slots[i]) - j
                return

    await asyncio.gather(*(sender(i, p) for i, p in enumerate(pairs)))
    end_send = perf()
    cpu = meter.read()
    reason = "complete"
    while True:
        done = all(p.b.ledger.complete() for p in pairs) and all(
            p.a.acks is None or p.a.acks.complete() for p in pairs
        )
        if done:
            break
        now = perf()
        arrivals = [p.b.last_arrival for p in pairs] + [p.a.last_arrival for p in pairs]
        last = max([end_send, *arrivals])
        if now - last > idle_gap:
            reason = "idle"
            break
        if now - end_send > drain_cap:
            reason = "cap"
            break
        await asyncio.sleep(0.05)
    totals = merge(p.b.ledger for p in pairs)
    last_arrival = max((max(p.b.ledger.arrived.values(), default=t0) for p in pairs), default=t0)
    undelivered = totals["lost"]
    point: dict[str, Any] = {
        "rate": rate,
        "pairs": len(pairs),
        "hold_s": hold,
        "sent": totals["expected"],
        "delivered": totals["delivered"],
        "p50_ms": totals["p50_ms"],
        "p99_ms": totals["p99_ms"],
        "max_ms": totals["max_ms"],
        # Still arriving when the drain cap ran out: late, not known lost.
        "lost": undelivered if reason != "cap" else 0,
        "pending": undelivered if reason == "cap" else 0,
        "duplicated": totals["duplicated"],
        "msgs_per_s": round(totals["delivered"] / max(last_arrival - t0, 1e-9), 1),
        "send_lag_p99_ms": ms(percentile(lags, 99)),
        "send_failed": send_failed,
        "drain": reason,
        "drain_s": round(perf() - end_send, 2),
        "closed_sockets": sum(p.a.closed + p.b.closed for p in pairs),
        **cpu,
    }
    if system.persistent:
        acks = [p.a.acks for p in pairs]
        ack_totals = merge(acks)
        errors = [e for p in pairs for e in p.a.errors]
        codes: dict[str, int] = {}
        for _, code in errors:
            codes[str(code)] = codes.get(str(code), 0) + 1
        acked_keys = {k for ledger in acks for k in ledger.arrived}
        # Silent loss: acknowledged (so committed) but never delivered live. (A
        # refused send was not stored; its resend may have been since.)
        silent = sum(1 for p in pairs for k in p.b.ledger.missing() if k in acked_keys)
        point.update(
            ack_p50_ms=ack_totals["p50_ms"],
            ack_p99_ms=ack_totals["p99_ms"],
            acked=ack_totals["delivered"],
            errors=len(errors),
            error_codes=codes,
            resent=sum(p.a.resent for p in pairs),
            # At the drain cap they may still be on their way: in flight, not lost.
            acked_not_delivered=silent if reason != "cap" else 0,
            acked_in_flight=silent if reason == "cap" else 0,
        )
    return point


async def run_point_checked(system: System, pairs: list[Pair], rate: float, hold: float, **kw):
    """run_point, run once more when the generator itself fell behind its schedule."""
    point = await run_point(system, pairs, rate, hold, **kw)
    lag = point["send_lag_p99_ms"] or 0.0
    if lag > LAG_LIMIT_MS and point["drain"] != "cap":
        await asyncio.sleep(1.0)
        again = await run_point(system, pairs, rate, hold, **kw)
        again["rerun_after"] = {
            k: point.get(k)
            for k in ("send_lag_p99_ms", "p50_ms", "p99_ms", "lost", "other_cpu0", "other_cpu1")
        }
        point = again
    return point


async def scenario_direct_unloaded(system: System, setup: dict | None, p: dict) -> dict:
    (pair,) = await open_pairs(system, setup, 1)
    tag = _tag()
    lat: list[float] = []
    ack_lat: list[float] = []
    pair.b.ledger = Ledger()
    pair.a.acks = Ledger() if system.persistent else None
    timeouts = 0
    started = None
    for j in range(p["warmup"] + p["messages"]):
        if j == p["warmup"]:
            started = perf()
        key = f"{tag}.{j}"
        arrived = asyncio.get_running_loop().create_future()

        def on_msg(k: str, at: float, key=key, arrived=arrived) -> None:
            if k == key and not arrived.done():
                arrived.set_result(at)

        pair.b.on_msg = on_msg
        intended = perf()
        pair.b.ledger.expect(key, intended)
        if pair.a.acks is not None:
            pair.a.acks.expect(key, intended)
        await pair.a.send(system.encode(pair.room, key))
        try:
            at = await asyncio.wait_for(arrived, 10)
        except TimeoutError:
            timeouts += 1
            continue
        if j >= p["warmup"]:
            lat.append(at - intended)
            if pair.a.acks is not None and key in pair.a.acks.arrived:
                ack_lat.append(pair.a.acks.arrived[key] - intended)
    elapsed = perf() - started
    await asyncio.sleep(0.5)
    result = {
        "mode": "closed loop, one pair, one message in flight",
        "messages": p["messages"],
        **_lat_summary(lat),
        "msgs_per_s": round(len(lat) / elapsed, 1),
        "lost": pair.b.ledger.lost,
        "duplicated": pair.b.ledger.duplicated,
        "timeouts": timeouts,
    }
    if system.persistent:
        result["ack_p50_ms"] = ms(percentile(ack_lat, 50))
        result["ack_p99_ms"] = ms(percentile(ack_lat, 99))
        result["errors"] = len(pair.a.errors)
    return result


async def scenario_direct_sweep(system: System, setup: dict | None, p: dict) -> dict:
    out: dict[str, Any] = {"hold_s": p["hold"], "by_pairs": {}}
    for count in p["pairs"]:
        pairs = await open_pairs(system, setup, count)
        await run_point(system, pairs, min(50, count * 2), 1.0, drain_cap=5)  # warm-up
        points = []
        for rate in p["rates"]:
            point = await run_point_checked(
                system, pairs, rate, p["hold"], drain_cap=p["drain_cap"]
            )
            points.append(point)
            print(
                f"  [{system.name}] pairs={count} rate={rate}: p99={point['p99_ms']} ms "
                f"lost={point['lost']} pending={point['pending']} drain={point['drain']}",
                file=sys.stderr,
                flush=True,
            )
            if point["drain"] == "cap" or point["closed_sockets"]:
                break  # a backlog or dead sockets: higher rates would only measure that
            if point["lost"] > point["sent"] / 2:
                break  # collapsed: more than half lost, higher rates only lose more
        out["by_pairs"][str(count)] = points
        for pair in pairs:
            pair.a.abort()
            pair.b.abort()
        await asyncio.sleep(1.0)
    return out


async def scenario_overload(system: System, setup: dict | None, p: dict) -> dict:
    pairs = await open_pairs(system, setup, p["pairs"])
    await run_point(system, pairs, min(50, p["pairs"] * 2), 1.0, drain_cap=5)
    if p.get("say_connected"):
        # bench.profile starts sampling on this line: connects are not what it profiles.
        print("connected", file=sys.stderr, flush=True)
    point = await run_point(
        system, pairs, p["rate"], p["hold"], drain_cap=p["drain_cap"], idle_gap=3.0
    )
    return point


# --- group fan-out ---------------------------------------------------------------


async def scenario_group(system: System, setup: dict | None, p: dict) -> dict:
    size = p["size"]
    if system.persistent:
        group = setup["group"]
        factories = [
            (lambda t=m["token"]: open_conn(system, token=t)) for m in group["members"][:size]
        ]
        room = group["conv"]
    else:
        room = "g100"
        factories = [(lambda: open_conn(system, room=room)) for _ in range(size)]
    conns = await gather_limited(factories, 25)
    bad = [c for c in conns if isinstance(c, BaseException)]
    if bad:
        raise RuntimeError(f"{len(bad)} members failed to connect: {bad[0]!r}")
    sender, recipients = conns[0], conns[1:]
    for conn in recipients:
        conn.ledger = Ledger()
    tag = _tag()
    to_last: list[float] = []
    timeouts = 0
    started = None
    for j in range(p["warmup"] + p["messages"]):
        if j == p["warmup"]:
            started = perf()
        key = f"{tag}.{j}"
        everyone = asyncio.get_running_loop().create_future()
        count = 0

        def on_msg(k: str, at: float, key=key, everyone=everyone) -> None:
            nonlocal count
            if k == key:
                count += 1
                if count == len(recipients) and not everyone.done():
                    everyone.set_result(at)

        intended = perf()
        for conn in recipients:
            conn.on_msg = on_msg
            conn.ledger.expect(key, intended)
        await sender.send(system.encode(room, key))
        try:
            at = await asyncio.wait_for(everyone, 10)
            if j >= p["warmup"]:
                to_last.append(at - intended)
        except TimeoutError:
            timeouts += 1
        count = 0
        if p.get("gap"):
            await asyncio.sleep(p["gap"])
    elapsed = perf() - started
    await asyncio.sleep(0.5)
    totals = merge(c.ledger for c in recipients)
    for conn in conns:
        conn.abort()
    return {
        "mode": f"closed loop: one message at a time to {len(recipients)} other members",
        "members": size,
        "messages": p["messages"],
        **_lat_summary(to_last),
        "delivery_p50_ms": totals["p50_ms"],
        "delivery_p99_ms": totals["p99_ms"],
        "msgs_per_s": round(len(to_last) * len(recipients) / elapsed, 1),
        "lost": totals["lost"],
        "duplicated": totals["duplicated"],
        "timeouts": timeouts,
        "errors": len(sender.errors),
    }


# --- idle connections ---------------------------------------------------------------


async def scenario_idle(system: System, setup: dict | None, p: dict) -> dict:
    pid = p["pid"]
    (pair,) = await open_pairs(system, setup, 1)
    await run_point(system, [pair], 50, 1.0, drain_cap=5)  # warm-up
    await asyncio.sleep(1.0)
    base = rss_kb(pid)
    held: list[Conn] = []
    levels = []
    failed_total = 0
    tokens = setup["idle"] if system.persistent else []
    # Held sockets stay silent here, as on the baselines (no heartbeat frame there):
    # this measures what an open socket costs. What ours' heartbeats (every 5 s, as the
    # protocol asks) cost is measured apart, after the first level (heartbeat_cost).
    interval = clients.HEARTBEAT_S if system.persistent else None
    clients.HEARTBEAT_S = None
    heartbeat_cost = None
    for level in p["levels"]:
        start_index = len(held)

        def factory(i: int):
            if system.persistent:
                return lambda: open_conn(system, token=tokens[i % len(tokens)])
            return lambda: open_conn(system, room=f"idle{i}")

        t_start = perf()
        made = await gather_limited(
            [factory(i) for i in range(start_index, level)], p["concurrency"]
        )
        connect_s = perf() - t_start
        ok = [c for c in made if isinstance(c, Conn)]
        failed = len(made) - len(ok)
        failed_total += failed
        held.extend(ok)
        await asyncio.sleep(p["settle"])
        rss = rss_kb(pid)
        point = await run_point_checked(
            system, [pair], p["probe_rate"], p["probe_hold"], drain_cap=10
        )
        if interval and heartbeat_cost is None:
            heartbeat_cost = await measure_heartbeats(held, interval, p["beat_hold"])
        alive = sum(1 for c in held if not c.closed)
        levels.append(
            {
                "sockets": len(held),
                "alive": alive,
                "connect_failed": failed,
                "connect_per_s": round(len(ok) / connect_s, 1),
                "rss_mb": round(rss / 1024, 1),
                "kb_per_conn": round((rss - base) / max(len(held), 1), 1),
                "probe_rate": p["probe_rate"],
                "p50_ms": point["p50_ms"],
                "p99_ms": point["p99_ms"],
                "lost": point["lost"] + point["pending"],
                "duplicated": point["duplicated"],
                "send_lag_p99_ms": point["send_lag_p99_ms"],
                "server_cpu": point.get("server_cpu"),
                "other_cpu0": point.get("other_cpu0"),
            }
        )
        print(f"  [{system.name}] idle {levels[-1]}", file=sys.stderr, flush=True)
    for conn in held:
        conn.abort()
    top = levels[-1]
    return {
        "base_rss_mb": round(base / 1024, 1),
        "levels": levels,
        "p50_ms": top["p50_ms"],
        "p99_ms": top["p99_ms"],
        "msgs_per_s": p["probe_rate"],
        "lost": sum(level["lost"] for level in levels),
        "duplicated": sum(level["duplicated"] for level in levels),
        "kb_per_conn": top["kb_per_conn"],
        "sockets": top["sockets"],
        "heartbeat_cost": heartbeat_cost,
        "connect_per_s": round(sum(level["connect_per_s"] for level in levels) / len(levels), 1),
    }


async def measure_heartbeats(held: list[Conn], interval: float, hold: float) -> dict:
    """Server CPU per `heartbeat` frame: quiet window, then every held socket beating
    once per `interval` on a fixed schedule; the CPU difference per beat, and how
    many sockets beating every `interval` s one core could carry at that cost."""
    await asyncio.sleep(1.0)
    quiet = CpuMeter(SERVER_PID)
    await asyncio.sleep(hold)
    base = quiet.read().get("server_cpu", 0.0)
    frame = json.dumps({"type": "heartbeat"})
    rate = len(held) / interval
    offsets = schedule(rate, 1, hold)[0]
    meter = CpuMeter(SERVER_PID)
    t0 = perf()
    sent = 0
    for k, offset in enumerate(offsets):
        delay = t0 + offset - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = held[k % len(held)]
        if not conn.closed:
            with contextlib.suppress(ConnectionClosed):
                await conn.send(frame)
                sent += 1
    elapsed = perf() - t0
    await asyncio.sleep(0.5)
    busy = meter.read().get("server_cpu", 0.0)
    per_beat = max(busy - base, 0.0) * (elapsed + 0.5) / max(sent, 1)
    return {
        "sockets": len(held),
        "interval_s": interval,
        "beats_per_s": round(sent / elapsed, 1),
        "server_cpu_quiet": base,
        "server_cpu_beating": busy,
        "cpu_ms_per_beat": round(per_beat * 1000, 3),
        "sockets_per_core_at_interval": round(interval / per_beat) if per_beat else None,
    }


# --- reconnect with a cursor (ours) -----------------------------------------------------


async def scenario_reconnect(system: System, setup: dict | None, p: dict) -> dict:
    spec = setup["reconnect"]
    device = await open_conn(system, token=spec["b"])
    cursor = await device.ready
    await device.ws.close()
    sender = await open_conn(system, token=spec["a"])
    sender.acks = Ledger()
    tag = _tag()
    keys = [f"{tag}.{j}" for j in range(p["missed"])]
    fill_started = perf()
    deadline = fill_started + 120
    for key in keys:
        # At most 32 sends in flight; an error frame answers a send as well as an ack.
        while (
            len(sender.acks.intended) - sender.acks.delivered - len(sender.errors) >= 32
            and perf() < deadline
        ):
            await asyncio.sleep(0.001)
        sender.acks.expect(key, perf())
        await sender.send(system.encode(spec["conv"], key))
    while sender.acks.delivered + len(sender.errors) < len(keys) and perf() < deadline:
        await asyncio.sleep(0.01)
    if sender.errors or not sender.acks.complete():
        raise RuntimeError(
            f"filling the inbox failed: {sender.acks.delivered} acks, "
            f"{len(sender.errors)} errors ({sender.errors[:3]})"
        )
    fill_s = perf() - fill_started
    await sender.ws.close()
    totals, from_hello, to_ready = [], [], []
    lost = duplicated = gaps = 0
    for _ in range(p["trials"]):
        ledger = Ledger()
        started = perf()
        for key in keys:
            ledger.expect(key, started)
        conn = await open_conn(
            system, token=spec["b"], cursor=cursor, ledger=ledger, record_cursors=True
        )
        ready_at = perf()
        deadline = perf() + 10
        while not ledger.complete() and perf() < deadline:
            await asyncio.sleep(0.005)
        if ledger.complete():
            last = max(ledger.arrived.values())
            totals.append(last - started)
            from_hello.append(last - conn.hello_at)
        to_ready.append(ready_at - started)
        lost += ledger.lost
        duplicated += ledger.duplicated
        seen = conn.cursors
        if seen:
            expected = set(range(cursor + 1, max(seen) + 1))
            gaps += len(expected - set(seen))
            duplicated += len(seen) - len(set(seen))
        await conn.ws.close()
    return {
        "mode": f"a device {p['missed']} messages behind reconnects with its cursor; "
        f"{p['trials']} trials from the same cursor, timed from the connect",
        "missed": p["missed"],
        "trials": p["trials"],
        **_lat_summary(totals),
        "from_hello_p50_ms": ms(percentile(from_hello, 50)),
        "from_hello_p99_ms": ms(percentile(from_hello, 99)),
        "to_ready_p99_ms": ms(percentile(to_ready, 99)),
        "msgs_per_s": round(p["missed"] / percentile(totals, 50), 1) if totals else 0,
        "lost": lost,
        "duplicated": duplicated,
        "gaps": gaps,
        "fill_s": round(fill_s, 2),
    }


# --- REST history (ours) ---------------------------------------------------------------


async def scenario_history(system: System, setup: dict | None, p: dict) -> dict:
    spec = setup["history"]

    def run() -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", system.port, timeout=30)
        headers = {"Authorization": f"Bearer {spec['token']}", "Host": "127.0.0.1"}
        rng = random.Random(7)
        lat: dict[str, list[float]] = {"newest": [], "before": []}
        bad = 0
        base = f"/api/v1/conversations/{spec['conv']}/messages/?limit={p['limit']}"
        total = p["warmup"] + p["requests"]
        started = perf()
        for j in range(total):
            if j == p["warmup"]:
                started = perf()
            which = "newest" if j % 2 == 0 else "before"
            path = base if which == "newest" else f"{base}&before={rng.randint(2, spec['count'])}"
            t = perf()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = perf() - t
            if response.status != 200 or not json.loads(body):
                bad += 1
            if j >= p["warmup"]:
                lat[which].append(elapsed)
        wall = perf() - started
        conn.close()
        both = lat["newest"] + lat["before"]
        return {
            "mode": "closed loop, one keep-alive connection, half newest page, "
            "half a random `before` page",
            "stored_messages": spec["count"],
            "page": p["limit"],
            "requests": p["requests"],
            **_lat_summary(both),
            "newest_p99_ms": ms(percentile(lat["newest"], 99)),
            "before_p99_ms": ms(percentile(lat["before"], 99)),
            "msgs_per_s": round(len(both) * p["limit"] / wall, 1),
            "pages_per_s": round(len(both) / wall, 1),
            "errors": bad,
            "lost": 0,
            "duplicated": 0,
        }

    return await asyncio.to_thread(run)


# --- the Redis floor ---------------------------------------------------------------------


class Floor:
    """Pub/sub round trips with redis-py asyncio: the cost of the Redis hop alone."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pub = aredis.Redis.from_url(url, socket_timeout=None, max_connections=200)
        self.ledgers: dict[str, Ledger] = {}
        self.on_msg = None
        self.last_arrival = 0.0

    async def subscriber(self, channels: list[str], ready: asyncio.Event) -> None:
        client = aredis.Redis.from_url(self.url, socket_timeout=None)
        pubsub = client.pubsub()
        await pubsub.subscribe(*channels)
        ready.set()
        async for item in pubsub.listen():
            if item["type"] != "message":
                continue
            now = perf()
            self.last_arrival = now
            channel = item["channel"].decode()
            key = item["data"].decode()
            ledger = self.ledgers.get(channel)
            if ledger is not None:
                ledger.receive(key, now)
            if self.on_msg is not None:
                self.on_msg(key, now)

    async def start(self, channels: list[str], connections: int = 1) -> list[asyncio.Task]:
        tasks = []
        for _ in range(connections):
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(self.subscriber(channels, ready)))
            await ready.wait()
        return tasks


async def floor_unloaded(url: str, p: dict) -> dict:
    floor = Floor(url)
    tasks = await floor.start(["floor:u0"])
    lat = []
    tag = _tag()
    started = perf()
    for j in range(p["warmup"] + p["messages"]):
        if j == p["warmup"]:
            started = perf()
        key = f"{tag}.{j}"
        fut = asyncio.get_running_loop().create_future()
        floor.on_msg = lambda k, at, key=key, fut=fut: (
            fut.set_result(at) if k == key and not fut.done() else None
        )
        intended = perf()
        await floor.pub.publish("floor:u0", key)
        at = await asyncio.wait_for(fut, 10)
        if j >= p["warmup"]:
            lat.append(at - intended)
    elapsed = perf() - started
    for task in tasks:
        task.cancel()
    return {
        "mode": "closed loop PUBLISH -> subscriber, one channel",
        "messages": p["messages"],
        **_lat_summary(lat),
        "msgs_per_s": round(len(lat) / elapsed, 1),
        "lost": 0,
        "duplicated": 0,
    }


async def floor_sweep(url: str, p: dict) -> dict:
    count = p["pairs"][0]
    floor = Floor(url)
    channels = [f"floor:p{i}" for i in range(count)]
    tasks = await floor.start(channels)
    points = []
    for rate in p["rates"]:
        tag = _tag()
        floor.ledgers = {c: Ledger() for c in channels}
        slots = schedule(rate, count, p["hold"])
        t0 = perf() + 0.2
        lags = []

        async def sender(i: int, slots=slots, t0=t0, tag=tag, lags=lags) -> None:
            for j, offset in enumerate(slots[i]):
                intended = t0 + offset
                delay = intended - perf()
                if delay > 0:
                    await asyncio.sleep(delay)
                key = f"{tag}.{i}.{j}"
                floor.ledgers[channels[i]].expect(key, intended)
                lags.append(perf() - intended)
                await floor.pub.publish(channels[i], key)

        await asyncio.gather(*(sender(i) for i in range(count)))
        end = perf()
        while not all(lg.complete() for lg in floor.ledgers.values()):
            if perf() - max(end, floor.last_arrival) > 2:
                break
            await asyncio.sleep(0.05)
        totals = merge(floor.ledgers.values())
        last = max(max(lg.arrived.values(), default=t0) for lg in floor.ledgers.values())
        points.append(
            {
                "rate": rate,
                "pairs": count,
                "hold_s": p["hold"],
                "sent": totals["expected"],
                "delivered": totals["delivered"],
                "p50_ms": totals["p50_ms"],
                "p99_ms": totals["p99_ms"],
                "max_ms": totals["max_ms"],
                "lost": totals["lost"],
                "pending": 0,
                "duplicated": totals["duplicated"],
                "msgs_per_s": round(totals["delivered"] / max(last - t0, 1e-9), 1),
                "send_lag_p99_ms": ms(percentile(lags, 99)),
                "drain": "idle",
            }
        )
        print(f"  [redis_floor] rate={rate}: p99={points[-1]['p99_ms']}", file=sys.stderr)
    for task in tasks:
        task.cancel()
    return {"hold_s": p["hold"], "by_pairs": {str(count): points}}


async def floor_group(url: str, p: dict) -> dict:
    floor = Floor(url)
    members = p["size"] - 1
    tasks = await floor.start(["floor:g"], connections=members)
    to_last = []
    tag = _tag()
    lost = 0
    for j in range(p["warmup"] + p["messages"]):
        key = f"{tag}.{j}"
        fut = asyncio.get_running_loop().create_future()
        count = 0

        def on_msg(k: str, at: float, key=key, fut=fut) -> None:
            nonlocal count
            if k == key:
                count += 1
                if count == members and not fut.done():
                    fut.set_result(at)

        floor.on_msg = on_msg
        intended = perf()
        await floor.pub.publish("floor:g", key)
        try:
            at = await asyncio.wait_for(fut, 10)
            if j >= p["warmup"]:
                to_last.append(at - intended)
        except TimeoutError:
            lost += members - count
        count = 0
    for task in tasks:
        task.cancel()
    return {
        "mode": f"closed loop PUBLISH to {members} subscriber connections",
        "members": p["size"],
        "messages": p["messages"],
        **_lat_summary(to_last),
        "msgs_per_s": None,
        "lost": lost,
        "duplicated": 0,
    }


SCENARIOS = {
    "direct_unloaded": scenario_direct_unloaded,
    "direct_sweep": scenario_direct_sweep,
    "overload": scenario_overload,
    "group100_fanout": scenario_group,
    "idle_connections": scenario_idle,
    "reconnect_sync": scenario_reconnect,
    "rest_history": scenario_history,
}
FLOOR = {
    "direct_unloaded": floor_unloaded,
    "direct_sweep": floor_sweep,
    "group100_fanout": floor_group,
}


async def main(spec: dict) -> dict:
    global SERVER_PID
    SERVER_PID = spec.get("pid")
    clients.HEARTBEAT_S = spec.get("heartbeat")
    if spec["system"] == "redis_floor":
        return await FLOOR[spec["scenario"]](spec["redis_url"], spec["params"])
    setup = None
    if spec.get("setup"):
        with open(spec["setup"]) as fh:
            setup = json.load(fh)
    system = System(spec["system"], spec["port"])
    return await SCENARIOS[spec["scenario"]](system, setup, spec["params"])


if __name__ == "__main__":
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(main(json.loads(sys.argv[1])))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    # Thousands of sockets may still be open: leave without closing handshakes.
    os._exit(0)
