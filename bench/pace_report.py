#!/usr/bin/python3
"""Reads what bench/pace_bench.sh left in WORK and prints its README table
(medians over the runs, each run's figure too) and draws the step chart.

pace_report.py WORK RUNS LOAD_SECONDS SVG
"""
import glob
import json
import statistics
import sys

WORK, RUNS, LOAD, SVG = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]


def stamp(name):
    return float(open(f"{WORK}/{name}").read())


def latencies(prefix):
    """(epoch seconds, latency ms) of every transaction pgbench logged."""
    out = []
    for path in glob.glob(f"{WORK}/{prefix}.[0-9]*"):
        for line in open(path):
            f = line.split()
            if len(f) >= 6 and f[0].isdigit():
                out.append((int(f[4]) + int(f[5]) / 1e6, int(f[2]) / 1000))
    return out


def p99(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))] if values else 0.0


def progress(name):
    """(epoch seconds, rows done) of rekey's progress lines, from its start."""
    points = [(stamp(f"{name}.start"), 0)]
    for line in open(f"{WORK}/{name}.progress"):
        t, _, rest = line.partition(" ")
        if rest.startswith("{") and '"progress"' in rest:
            points.append((float(t), json.loads(rest)["rows_done"]))
    return points


def rows_at(points, t):
    for (t0, r0), (t1, r1) in zip(points, points[1:]):
        if t0 <= t <= t1:
            return r0 + (r1 - r0) * (t - t0) / (t1 - t0) if t1 > t0 else r1
    return points[-1][1] if t > points[-1][0] else 0


def rate(points, t0, t1):
    return (rows_at(points, t1) - rows_at(points, t0)) / (t1 - t0)


def report(name):
    return json.load(open(f"{WORK}/{name}.json"))


def whole_rate(name):
    r = report(name)
    return r["rows_seen"] / r["duration_seconds"]


def run_figures(run):
    f = {}
    f["max"] = whole_rate(f"max_idle.{run}")
    f["auto_idle"] = whole_rate(f"auto_idle.{run}") / f["max"]
    load = stamp(f"live.{run}.load")
    f["live_p99_base"] = p99([ms for _, ms in latencies(f"live_base.{run}")])
    f["live_p99_after"] = p99([ms for _, ms in latencies(f"live_after.{run}")])
    f["live_p99"] = p99([ms for _, ms in latencies(f"live_load.{run}")])
    f["live_p99_ratio"] = f["live_p99"] / f["live_p99_base"]
    f["live_rate"] = rate(progress(f"live.{run}"), load + 1, load + LOAD - 1)
    f["live_share"] = f["live_rate"] / f["max"]
    f.update(peer_figures(run))
    f["peer_share"] = f["peer_rate"] / f["max"]
    load = stamp(f"sat.{run}.load")
    f["sat_tps_base"] = len(latencies(f"sat_base.{run}")) / LOAD
    f["sat_tps_after"] = len(latencies(f"sat_after.{run}")) / LOAD
    f["sat_tps"] = len(latencies(f"sat_load.{run}")) / LOAD
    f["sat_tps_ratio"] = f["sat_tps"] / f["sat_tps_base"]
    f["sat_rate"] = rate(progress(f"sat.{run}"), load + 1, load + LOAD - 1)
    f["sat_share"] = f["sat_rate"] / f["max"]
    f["sat_finished"] = report(f"sat.{run}")["exit_code"] == 0
    f.update(step_figures(run))
    return f


def peer_figures(run):
    """The plain SQL writer beside 400 tps: the app's p99 ratio and the rows/s it wrote."""
    base = p99([ms for _, ms in latencies(f"peer_base.{run}")])
    summary = open(f"{WORK}/peer.{run}.out").read()
    tps = float(summary.split("tps = ")[1].split()[0])
    rows = int(open(f"{WORK}/peer.{run}.rows").read())
    return {"peer_p99_ratio": p99([ms for _, ms in latencies(f"peer_load.{run}")]) / base, "peer_rate": tps * rows}


def step_figures(run):
    start, step = stamp(f"step.{run}.start"), stamp(f"step.{run}.load")
    base = p99([ms for _, ms in latencies(f"step_base.{run}")])
    tx = latencies(f"step_load.{run}")
    # The first second after the step from which the app's p99 to the end of the load is within 2x.
    back = LOAD
    for s in range(int(LOAD)):
        if p99([ms for t, ms in tx if t >= step + s]) <= 2 * base:
            back = s
            break
    # The pace back to no limit (or to 85% of the rate before the step) after the load ended.
    points = progress(f"step.{run}")
    before = rate(points, start + 1, step)
    end = step + LOAD - start
    recover = None
    for c in report(f"step.{run}")["pace"]["changes"]:
        r = c["rows_per_second"]
        # pgbench's -T runs a little short of the stamp taken before it started
        if c["at_seconds"] >= end - 1 and (r is None or r >= 0.85 * before):
            recover = max(0.0, c["at_seconds"] - end)
            break
    return {"step_p99_back": back, "step_recover": recover, "step_before": before}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def row(figures, label, key, fmt, target=None, met=None):
    values = [f[key] for f in figures]
    shown = ", ".join("-" if v is None else fmt.format(v) for v in values)
    m = med(values)
    verdict = "" if met is None else ("met" if m is not None and met(m) else "not met")
    print(f"| {label} | {shown} | {'-' if m is None else fmt.format(m)} | {target or ''} | {verdict} |")


def table(figures):
    print("| figure | each run | median | target | |")
    print("|---|---|---:|---|---|")
    row(figures, "`--pace max`, idle: rows/s", "max", "{:,.0f}")
    row(figures, "`--pace auto`, idle: share of max", "auto_idle", "{:.0%}", ">= 85%", lambda m: m >= 0.85)
    row(figures, "400 tps: app p99 before rekey, ms", "live_p99_base", "{:.2f}")
    row(figures, "400 tps: app p99 with rekey, ms", "live_p99", "{:.2f}")
    row(figures, "400 tps: p99 ratio", "live_p99_ratio", "{:.2f}x", "<= 2x", lambda m: m <= 2)
    row(figures, "400 tps: rekey rows/s under the load", "live_rate", "{:,.0f}")
    row(figures, "400 tps: app p99 after rekey ended (autovacuum of its rows), ms", "live_p99_after", "{:.2f}")
    row(figures, "400 tps: rekey's share of max", "live_share", "{:.0%}", ">= 25%", lambda m: m >= 0.25)
    row(figures, "400 tps, no rekey: rows/s of a plain SQL `UPDATE` of the same columns (a quarter of max)",
        "peer_rate", "{:,.0f}")
    row(figures, "400 tps, no rekey: that `UPDATE`'s share of max", "peer_share", "{:.0%}")
    row(figures, "400 tps, no rekey: p99 ratio beside that `UPDATE`", "peer_p99_ratio", "{:.2f}x")
    row(figures, "saturated: app tps before rekey", "sat_tps_base", "{:,.0f}")
    row(figures, "saturated: app tps with rekey", "sat_tps", "{:,.0f}")
    row(figures, "saturated: app throughput kept", "sat_tps_ratio", "{:.0%}", ">= 90%", lambda m: m >= 0.9)
    row(figures, "saturated: app tps after rekey ended", "sat_tps_after", "{:,.0f}")
    row(figures, "saturated: rekey rows/s under the load", "sat_rate", "{:,.0f}")
    row(figures, "saturated: rekey's share of max", "sat_share", "{:.1%}", "near zero")
    row(figures, "saturated: rekey finished after the load (exit 0)", "sat_finished", "{}", "yes",
        lambda m: m)
    row(figures, "step: s until app p99 within 2x of baseline", "step_p99_back", "{:.0f}", "< 5 s",
        lambda m: m < 5)
    row(figures, "step: s until rekey's pace recovers (no limit, or 85% of before)", "step_recover", "{:.1f}", "< 30 s",
        lambda m: m < 30)


def chart(run):
    """Two panels over time since rekey started: its rows/s and its pace; the app's p99 per second."""
    start, step = stamp(f"step.{run}.start"), stamp(f"step.{run}.load")
    points = progress(f"step.{run}")
    end_t = points[-1][0] - start
    actual = [(t - start, rate(points, t - 1, t + 1)) for t in frange(start + 1, points[-1][0] - 1, 0.5)]
    pace = []
    for c in report(f"step.{run}")["pace"]["changes"]:
        pace.append((c["at_seconds"], c["rows_per_second"]))
    tx = latencies(f"step_load.{run}")
    base = p99([ms for _, ms in latencies(f"step_base.{run}")])
    seconds = {}
    for t, ms in tx:
        seconds.setdefault(int(t - start), []).append(ms)
    app = sorted((s + 0.5, p99(v)) for s, v in seconds.items())
    top_rate = max([r for _, r in actual] + [1]) * 1.15
    top_ms = max([2.5 * base] + [ms for _, ms in app]) * 1.1
    w, h, pad = 900, 200, 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{2 * h + 3 * pad}" font-family="sans-serif" '
           f'font-size="12"><rect width="100%" height="100%" fill="white"/>']
    x = lambda t: pad + (w - 2 * pad) * t / end_t  # noqa: E731
    for panel, (title, top) in enumerate([("rekey rows/s (blue: done; orange: pace, top = no limit)", top_rate),
                                          ("app p99 per second, ms (dashed: 2x its baseline)", top_ms)]):
        y0 = pad + panel * (h + pad)
        y = lambda v, y0=y0, top=top: y0 + h - h * min(v, top) / top  # noqa: E731
        out.append(f'<rect x="{x(step - start):.1f}" y="{y0}" width="{x(step - start + LOAD) - x(step - start):.1f}" '
                   f'height="{h}" fill="#eee"/>')
        out.append(f'<text x="{pad}" y="{y0 - 8}">{title}; grey: 400 tps load</text>')
        out.append(f'<line x1="{pad}" y1="{y0 + h}" x2="{w - pad}" y2="{y0 + h}" stroke="black"/>')
        out.append(f'<text x="{pad - 4}" y="{y0 + 10}" text-anchor="end">{top:,.0f}</text>')
        if panel == 0:
            out.append(polyline([(x(t), y(r)) for t, r in actual], "#1f77b4"))
            steps = []
            for i, (t, r) in enumerate(pace):
                r = top if r is None else r
                if steps:
                    steps.append((x(t), steps[-1][1]))
                steps.append((x(t), y(r)))
            if steps:
                steps.append((x(end_t), steps[-1][1]))
            out.append(polyline(steps, "#ff7f0e"))
        else:
            out.append(polyline([(x(t), y(ms)) for t, ms in app], "#d62728"))
            out.append(f'<line x1="{pad}" y1="{y(2 * base):.1f}" x2="{w - pad}" y2="{y(2 * base):.1f}" '
                       f'stroke="#d62728" stroke-dasharray="4 3"/>')
    for t in range(0, int(end_t) + 1, 5):
        out.append(f'<text x="{x(t):.1f}" y="{2 * h + 2 * pad + 16}" text-anchor="middle">{t} s</text>')
    out.append("</svg>")
    open(SVG, "w").write("\n".join(out) + "\n")


def frange(a, b, step):
    while a <= b:
        yield a
        a += step


def polyline(points, color):
    text = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return f'<polyline points="{text}" fill="none" stroke="{color}" stroke-width="1.5"/>'


figures = [run_figures(run) for run in range(1, RUNS + 1)]
table(figures)
chart(RUNS)
print(f"\nchart: {SVG}", file=sys.stderr)
