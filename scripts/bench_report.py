#!/usr/bin/env python3
"""The benchmark's numbers, table, charts and one-page report, from the raw loadgen reports that
scripts/bench.sh leaves in OUT/raw/.

    bench_report.py --out OUT  reads OUT/meta.json and OUT/raw/*.json, writes OUT/results.json,
                               OUT/results.md, one SVG per chart and OUT/report.html

meta.json (written by bench.sh) names the runs: "runs" is a list of {"key", "variant",
"redis_rtt_ms"} (redis_rtt_ms null without --redis-rtt), with "rounds" raw reports each
(raw/KEY-rN.json), plus the settings and the exact command. An optional "failovers" list names
raw reports with a per-second series and the times something was killed and started again
({"name": "app1" or "redis", "variant", "report", "events": [{"what", "t"}]}).

report.html is self-contained: the charts are SVG drawn here and inlined, the styles inline,
and nothing is fetched from elsewhere (no src or href to another document)."""
import datetime
import html
import json
import math
import os
import platform
import statistics
import subprocess
import sys

COLOURS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000"]


# ---- numbers ----------------------------------------------------------------------------------

def load_runs(out, meta):
    """One row per run key: medians over its rounds."""
    med = statistics.median
    rows = []
    for run in meta["runs"]:
        reports = [json.load(open(os.path.join(out, "raw", f'{run["key"]}-r{k}.json')))
                   for k in range(1, meta["rounds"] + 1)]
        reqs = [r["requests"] for r in reports]
        errors = [sum(r["errors"].values()) for r in reports]
        rows.append({
            "key": run["key"],
            "variant": run["variant"],
            "redis_rtt_ms": run.get("redis_rtt_ms"),
            "rps": med([r["rps"] for r in reports]),
            "rps_min": min(r["rps"] for r in reports),
            "rps_max": max(r["rps"] for r in reports),
            "p50": med([r["latency_ms"]["p50"] for r in reports]),
            "p90": med([r["latency_ms"]["p90"] for r in reports]),
            "p99": med([r["latency_ms"]["p99"] for r in reports]),
            "p999": med([r["latency_ms"]["p999"] for r in reports]),
            "auth_failure_pct": 100 * med([r["auth_failure_rate"] for r in reports]),
            "error_pct": 100 * med([e / max(1, q + e) for e, q in zip(errors, reqs)]),
            "cpu_us_per_req": med([1e6 * r["cluster_cpu_s"] / r["requests"] if r["requests"] else 0
                                   for r in reports]),
            "requests": sum(reqs),
            "backends": sorted({b for r in reports for b in r["backends"]}),
        })
    return rows


def load_wrk(out):
    path = os.path.join(out, "raw", "wrk-compare.txt")
    if not os.path.exists(path):
        return None
    # Per round: wrk's and loadgen's requests/s, then (newer runs) each tool's CPU seconds over
    # its 2 s run.
    rows = [list(map(float, line.split())) for line in open(path) if len(line.split()) in (2, 4)]
    if not rows:
        return None
    med = statistics.median
    out = {"wrk_rps": med([r[0] for r in rows]), "loadgen_rps": med([r[1] for r in rows]),
           "ratio": med([r[1] / r[0] for r in rows if r[0] > 0])}
    cpu = [r for r in rows if len(r) == 4 and r[0] > 0 and r[1] > 0]
    if cpu:
        out["wrk_cpu_us"] = med([r[2] / (r[0] * 2) * 1e6 for r in cpu])
        out["loadgen_cpu_us"] = med([r[3] / (r[1] * 2) * 1e6 for r in cpu])
    return out


def wrk_sentence(wrk):
    """One sentence for the table's reader: what each tool got, and what each cost."""
    text = (f'wrk {wrk["wrk_rps"]:.0f} req/s, loadgen {wrk["loadgen_rps"]:.0f} req/s, '
            f'ratio **{wrk["ratio"]:.2f}**')
    if "wrk_cpu_us" in wrk:
        text += (f'; CPU per request of the tool itself: wrk {wrk["wrk_cpu_us"]:.1f} µs, loadgen '
                 f'{wrk["loadgen_cpu_us"]:.1f} µs. Requests/s is what the server gave each tool '
                 f'(near 1: the load generator was not the limit); CPU per request is what each '
                 f'tool took from the machine it shares with the servers')
    return text + "."


def load_failovers(out, meta):
    """The failover scenarios' per-second series."""
    return [load_failover(out, f) for f in meta.get("failovers", [])]


def load_failover(out, f):
    r = json.load(open(os.path.join(out, "raw", f["report"])))
    # Each second is drawn at its middle; a last second cut short by the end of the run is left out.
    series = [dict(p, t=p["t"] + 0.5) for p in r.get("series", []) if p["t"] + 0.5 <= r["duration_s"]]
    return {"name": f["name"], "variant": f["variant"], "events": f.get("events", []), "series": series,
            "requests": r["requests"], "errors": r["errors"], "status": r["status"]}


# ---- SVG charts -------------------------------------------------------------------------------

def _nice_max(v):
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def _fmt(v):
    if v >= 100 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}".rstrip("0").rstrip(".")


class Svg:
    """A chart frame: title, axes and legend around a plot area, as one SVG string."""
    W, H, L, R, T, B = 760, 380, 70, 170, 40, 60

    def __init__(self, title, ylabel, ymax, xlabel=""):
        self.ymax = _nice_max(ymax)
        self.pw, self.ph = self.W - self.L - self.R, self.H - self.T - self.B
        e = html.escape
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.W}" height="{self.H}" '
            f'viewBox="0 0 {self.W} {self.H}" font-family="sans-serif" font-size="12">',
            f'<title>{e(title)}</title><rect width="100%" height="100%" fill="white"/>',
            f'<text x="{self.W / 2}" y="22" text-anchor="middle" font-size="15">{e(title)}</text>',
            f'<text transform="translate(16,{self.T + self.ph / 2}) rotate(-90)" '
            f'text-anchor="middle">{e(ylabel)}</text>',
            f'<text x="{self.L + self.pw / 2}" y="{self.H - 12}" text-anchor="middle">{e(xlabel)}</text>']
        for i in range(6):
            v = self.ymax * i / 5
            y = self.y(v)
            self.parts.append(f'<line x1="{self.L}" x2="{self.L + self.pw}" y1="{y:.1f}" y2="{y:.1f}" '
                              f'stroke="#ddd"/><text x="{self.L - 6}" y="{y + 4:.1f}" '
                              f'text-anchor="end">{_fmt(v)}</text>')
        self.legend = []

    def y(self, v):
        return self.T + self.ph - self.ph * min(v, self.ymax) / self.ymax

    def add_legend(self, name, colour):
        k = len(self.legend)
        x, y = self.L + self.pw + 14, self.T + 10 + 18 * k
        self.legend.append(f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{colour}"/>'
                           f'<text x="{x + 18}" y="{y + 1}">{html.escape(name)}</text>')

    def xlabel_at(self, x, text):
        self.parts.append(f'<text x="{x:.1f}" y="{self.T + self.ph + 18}" '
                          f'text-anchor="middle">{html.escape(text)}</text>')

    def done(self):
        self.parts.append(f'<line x1="{self.L}" x2="{self.L}" y1="{self.T}" y2="{self.T + self.ph}" '
                          f'stroke="black"/><line x1="{self.L}" x2="{self.L + self.pw}" '
                          f'y1="{self.T + self.ph}" y2="{self.T + self.ph}" stroke="black"/>')
        return "\n".join(self.parts + self.legend + ["</svg>"])


def svg_bars(title, ylabel, labels, series, unit=""):
    """Grouped bars: one group per label, one bar per (name, values) series, values labelled."""
    top = max([v for _, vals in series for v in vals] + [0])
    c = Svg(title, ylabel, top * 1.1)
    group = c.pw / max(1, len(labels))
    bw = group * 0.8 / max(1, len(series))
    for k, (name, vals) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        if len(series) > 1:
            c.add_legend(name, colour)
        for i, v in enumerate(vals):
            x = c.L + group * i + group * 0.1 + bw * k
            c.parts.append(f'<rect x="{x:.1f}" y="{c.y(v):.1f}" width="{bw:.1f}" '
                           f'height="{c.T + c.ph - c.y(v):.1f}" fill="{colour}"><title>'
                           f'{html.escape(labels[i])} {html.escape(name)}: {_fmt(v)}{unit}</title></rect>')
            if len(series) == 1:
                c.parts.append(f'<text x="{x + bw / 2:.1f}" y="{c.y(v) - 4:.1f}" '
                               f'text-anchor="middle">{_fmt(v)}{unit}</text>')
    for i, label in enumerate(labels):
        c.xlabel_at(c.L + group * (i + 0.5), label)
    return c.done()


def svg_lines(title, xlabel, ylabel, xs, series, marks=()):
    """Lines with points over numeric xs: one (name, ys) series each; None leaves a gap. marks
    are (x, label) pairs drawn as dashed vertical lines."""
    top = max([v for _, ys in series for v in ys if v is not None] + [0])
    c = Svg(title, ylabel, top * 1.1, xlabel)
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1

    def x(v):
        return c.L + c.pw * (v - lo) / span

    step = max(1, len(set(xs)) // 12)
    for v in sorted(set(xs))[::step]:
        c.xlabel_at(x(v), _fmt(v))
    for v, label in marks:
        c.parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{c.T}" y2="{c.T + c.ph}" '
                       f'stroke="#888" stroke-dasharray="4,3"/><text x="{x(v) + 3:.1f}" '
                       f'y="{c.T + 12}" fill="#555">{html.escape(label)}</text>')
    for k, (name, ys) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        c.add_legend(name, colour)
        pts = [(x(a), c.y(b)) for a, b in zip(xs, ys) if b is not None]
        if len(pts) > 1:
            c.parts.append('<polyline fill="none" stroke-width="2" stroke="%s" points="%s"/>' % (
                colour, " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)))
        for a, b in pts:
            c.parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>')
    return c.done()


# ---- what is written --------------------------------------------------------------------------

def charts(rows, failovers):
    """(file name, caption, svg) for every chart of the run."""
    out = []
    rtt = sorted({r["redis_rtt_ms"] for r in rows if r["redis_rtt_ms"] is not None})
    if rtt:
        variants = list(dict.fromkeys(r["variant"] for r in rows))
        by = {(r["variant"], r["redis_rtt_ms"]): r for r in rows}

        def series(field):
            return [(v, [by[(v, t)][field] if (v, t) in by else None for t in rtt]) for v in variants]
        out.append(("rtt-throughput.svg", "Requests per second against the round trip to Redis",
                    svg_lines("Throughput against Redis round trip", "round trip to Redis (ms)",
                              "requests/s", rtt, series("rps"))))
        out.append(("rtt-p50.svg", "Median latency against the round trip to Redis",
                    svg_lines("p50 latency against Redis round trip", "round trip to Redis (ms)",
                              "ms", rtt, series("p50"))))
        out.append(("rtt-p99.svg", "99th percentile latency against the round trip to Redis",
                    svg_lines("p99 latency against Redis round trip", "round trip to Redis (ms)",
                              "ms", rtt, series("p99"))))
    labels = [r["key"] for r in rows]
    out.append(("throughput.svg", "Throughput (median requests/s)",
                svg_bars("Throughput per variant (median requests/s)", "requests/s", labels,
                         [("requests/s", [r["rps"] for r in rows])])))
    out.append(("latency.svg", "Latency percentiles (medians over rounds)",
                svg_bars("Latency percentiles", "ms", labels,
                         [(p, [r[k] for r in rows]) for p, k in
                          (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"))])))
    out.append(("failures.svg", "Authentication failures: 401 after a successful login",
                svg_bars("Authentication failures (% of profile requests)", "%", labels,
                         [("auth failures", [r["auth_failure_pct"] for r in rows])], "%")))
    out.append(("cpu.svg", "Cluster CPU time per request (servers, balancer, Redis)",
                svg_bars("CPU time per request", "µs", labels,
                         [("CPU µs/request", [r["cpu_us_per_req"] for r in rows])])))
    for failover in failovers:
        out += failover_charts(failover)
    return out


def failover_charts(failover):
    """The requests and errors per second of one failover run, and its errors alone."""
    base = "failover" if failover["name"] == "app1" else f'failover-{failover["name"]}'
    out = []
    if failover["series"]:
        s = failover["series"]
        ts = [p["t"] for p in s]
        kinds = sorted({k for p in s for k, n in p["errors"].items() if n} |
                       {"connect", "read"})
        lines = [("requests ok", [p["ok"] for p in s])]
        lines += [(f"error: {k}", [p["errors"].get(k, 0) for p in s]) for k in kinds]
        lines += [("HTTP 5xx", [p["http_5xx"] for p in s]), ("HTTP 4xx", [p["http_4xx"] for p in s])]
        ev = ", ".join(f'{e["what"]} at {e["t"]:.1f} s' for e in failover["events"])
        marks = [(e["t"], e["what"]) for e in failover["events"]]
        out.append((f"{base}.svg", f'Failover under load ({failover["variant"]}): {ev}',
                    svg_lines(f'Failover under load: {failover["variant"]}', "seconds",
                              "per second", ts, lines, marks)))
        errs = [(n, vals) for n, vals in lines[1:]]
        out.append((f"{base}-errors.svg", "The same run, errors only",
                    svg_lines("Errors per second by kind", "seconds", "per second", ts, errs,
                              marks)))
    return out


def table_md(rows):
    rtt = any(r["redis_rtt_ms"] is not None for r in rows)
    head = "| variant | " + ("Redis RTT ms | " if rtt else "") + \
        "requests/s | p50 ms | p99 ms | auth failures | other errors | CPU µs/request |"
    lines = [head, "|---|" + ("---:|" if rtt else "") + "---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f'| {r["variant"]} | ' + (f'{r["redis_rtt_ms"]:g} | ' if rtt else "") +
                     f'{r["rps"]:.0f} ({r["rps_min"]:.0f}–{r["rps_max"]:.0f}) | {r["p50"]:.2f} | '
                     f'{r["p99"]:.2f} | {r["auth_failure_pct"]:.1f}% | {r["error_pct"]:.2f}% | '
                     f'{r["cpu_us_per_req"]:.0f} |')
    return lines


def setting_text(meta):
    m = meta
    return (f'{m["instances"]} instances per variant behind the {m["balancer"]} balancer (HTTPS); '
            f'loadgen closed loop, {m["users"]} virtual users on {m["concurrency"]} connections, '
            f'{m["threads"]} thread(s); medians of {m["rounds"]} rounds of {m["duration_s"]} s, '
            f'runs interleaved round by round after a warm-up. Each user logs in once, then asks '
            f'for /profile.')


def machine(meta):
    """Facts about the machine and the software, for the report."""
    facts = [("host", platform.node()), ("kernel", platform.release()),
             ("cores", str(os.cpu_count()))]
    try:
        cpu = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        facts.append(("CPU", cpu[0] if cpu else "?"))
        mem = [ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")]
        facts.append(("memory", f"{int(mem[0]) // 1024} MiB"))
        facts.append(("load average at the end", " ".join(open("/proc/loadavg").read().split()[:3])))
    except OSError:
        pass
    for name, argv in meta.get("versions", {}).items():
        try:
            v = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            facts.append((name, (v.stdout or v.stderr).strip().splitlines()[0]))
        except (OSError, IndexError, subprocess.SubprocessError):
            facts.append((name, "not found"))
    return facts


def report_html(meta, rows, wrk, chart_list, facts):
    e = html.escape
    rtt = any(r["redis_rtt_ms"] is not None for r in rows)
    cols = ["variant"] + (["Redis RTT ms"] if rtt else []) + [
        "requests/s (range)", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "auth failures",
        "other errors", "CPU µs/request"]
    body = ["<tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        cells = [r["variant"]] + ([f'{r["redis_rtt_ms"]:g}'] if rtt else []) + [
            f'{r["rps"]:.0f} ({r["rps_min"]:.0f}–{r["rps_max"]:.0f})', f'{r["p50"]:.2f}',
            f'{r["p90"]:.2f}', f'{r["p99"]:.2f}', f'{r["p999"]:.2f}',
            f'{r["auth_failure_pct"]:.1f}%', f'{r["error_pct"]:.2f}%', f'{r["cpu_us_per_req"]:.0f}']
        body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    figs = [f'<figure id="{e(name[:-4])}">{svg}<figcaption>{e(cap)}</figcaption></figure>'
            for name, cap, svg in chart_list]
    read = [
        "Compare numbers within one run only: the machine is shared and noisy, so quote ratios "
        "between variants rather than absolute numbers.",
        "Auth failures are 401 answers after a successful login. With N instances behind round "
        "robin, session-memory fails about (N-1)/N of its requests; every other variant should fail none.",
        "CPU µs/request is the user+system time of the cluster's processes (servers, balancer, "
        "Redis) from /proc over the run, divided by the requests answered.",
    ]
    if rtt:
        read.append(
            "Redis RTT is the round trip added between every login server and Redis by bin/relay "
            "(0 still goes through the relay). Variants that ask Redis on every request "
            "(session-redis, jwt-hs256-revoke) pay at least one round trip per request: their p50 "
            "moves up with the RTT, and with a fixed number of connections their requests/s fall. "
            "jwt-hs256 never asks Redis and stays flat: it is the control.")
    if any(n.startswith("failover") for n, _, _ in chart_list):
        read.append(
            "The failover charts count, second by second, the requests that succeeded and every "
            "kind of failure while a backend (or the Redis master) was killed with SIGKILL: "
            "connect and read errors are what loadgen saw on its side, HTTP 5xx what the "
            "balancer or the servers answered (503 store_unavailable while Redis has no master).")
    if wrk:
        read.append("loadgen against wrk on a trivial endpoint: " + wrk_sentence(wrk).replace("**", ""))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>Benchmark: sessions versus JWT</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
        "text-align:right}td:first-child,th:first-child{text-align:left;white-space:nowrap}th{background:#f3f3f3}"
        "figure{margin:1.5em 0}figcaption{color:#555}code,pre{background:#f6f6f6;padding:.2em .4em}"
        "pre{white-space:pre-wrap;padding:.6em}</style></head><body>",
        "<h1>Benchmark: sessions versus JWT behind a round-robin balancer</h1>",
        f'<p>{e(setting_text(meta))}</p>',
        f'<p>Run finished {e(meta.get("finished", ""))}.</p>',
        "<h2>Results</h2>", '<table id="results">', *body, "</table>",
        "<h2>How to read it</h2><ul>", *[f"<li>{e(t)}</li>" for t in read], "</ul>",
        "<h2>Charts</h2>", *figs,
        "<h2>Machine and versions</h2><table>",
        *[f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts], "</table>",
        "<h2>Command</h2>", f'<pre>{e(meta.get("command", ""))}</pre>',
        "<p>Raw loadgen reports: raw/. Numbers: results.json, results.md.</p>",
        "</body></html>", ""])


def write_all(out):
    meta = json.load(open(os.path.join(out, "meta.json")))
    meta.setdefault("finished", datetime.datetime.now(datetime.timezone.utc)
                    .strftime("%Y-%m-%d %H:%M UTC"))
    rows = load_runs(out, meta) if meta["runs"] else []
    wrk = load_wrk(out)
    failovers = load_failovers(out, meta)
    results = {k: meta[k] for k in ("balancer", "instances", "rounds", "duration_s", "users",
                                    "concurrency", "threads", "command")}
    results.update({"variants": rows, "wrk_comparison": wrk})
    results["failovers"] = failovers
    json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=2)
    chart_list = charts(rows, failovers) if rows else []
    for name, _, svg in chart_list:
        open(os.path.join(out, name), "w").write(svg)
    md = ["# Benchmark: sessions versus JWT behind a round-robin balancer", "", setting_text(meta), ""]
    md += table_md(rows)
    n = meta["instances"]
    md += ["", f"Expected auth-failure rate for session-memory with round robin: (N-1)/N = "
           f"{100 * (n - 1) / n:.1f}%; 0% for every other variant."]
    if wrk:
        md += ["", "loadgen versus wrk on a trivial endpoint: " + wrk_sentence(wrk)]
    md += ["", "Charts: " + ", ".join(n for n, _, _ in chart_list) + ". The whole page: report.html."]
    open(os.path.join(out, "results.md"), "w").write("\n".join(md) + "\n")
    open(os.path.join(out, "report.html"), "w").write(
        report_html(meta, rows, wrk, chart_list, machine(meta)))
    return results


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cli import ArgParser
    ap = ArgParser(prog="bench_report.py", description="The bench's table, charts and report.html "
                   "from the raw loadgen reports of a scripts/bench.sh run.")
    ap.add_argument("--out", metavar="DIR", required=True,
                    help="the run's output directory (meta.json and raw/ in, everything else out)")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.out, "meta.json")):
        ap.error(f"--out {args.out}: no meta.json there (not a bench.sh output directory)")
    write_all(args.out)
