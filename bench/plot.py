"""docs/bench-p99.png: p99 latency against offered rate, from bench/results/latest.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
STYLE = {
    "ours": ("ours (persisted)", "tab:red", "o", "-"),
    "channels_tutorial": ("Channels tutorial (channels_redis)", "tab:blue", "s", "-"),
    "bare_relay": ("bare websockets + Redis relay", "tab:green", "^", "-"),
    "redis_floor": ("Redis pub/sub floor", "tab:gray", ".", ":"),
}


def plot(latest: Path, out: Path) -> None:
    data = json.loads(latest.read_text())
    sweep = data["scenarios"]["direct_sweep"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for system, (label, color, marker, line) in STYLE.items():
        entry = sweep.get(system)
        if not entry or "points" not in entry:
            continue
        points = [p for p in entry["points"] if p.get("p99_ms") is not None]
        rates = [p["rate"] for p in points]
        p99 = [p["p99_ms"] for p in points]
        ax.plot(rates, p99, line, color=color, marker=marker, label=label)
        bad = [p for p in points if p.get("lost") or p.get("pending")]
        if bad:
            ax.scatter(
                [p["rate"] for p in bad],
                [p["p99_ms"] for p in bad],
                s=140,
                facecolors="none",
                edgecolors=color,
                linewidths=1.5,
            )
        overload = entry.get("overload")
        if overload and overload.get("p99_ms") is not None:
            ax.scatter([overload["rate"]], [overload["p99_ms"]], marker="x", color=color, s=60)
    ax.axhline(50, color="black", linewidth=0.8, linestyle="--")
    ax.text(26, 55, "p99 = 50 ms", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate, messages/s (open loop, 50 pairs)")
    ax.set_ylabel("p99 delivery latency, ms (from intended send time)")
    machine = data["machine"]
    hold = sweep.get("ours", sweep.get("bare_relay", {})).get("hold_s")
    ax.set_title(
        f"1:1 delivery p99 vs offered rate ({machine.get('mode')} run, {hold:g} s per rate, "
        f"{machine.get('date', '')[:10]})",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.text(
        0.01,
        0.01,
        "circle: messages lost or still pending at that rate; x: 4x our max_rate overload run",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    latest = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench/results/latest.json"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/bench-p99.png"
    plot(latest, out)
