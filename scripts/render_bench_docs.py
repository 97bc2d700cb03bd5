"""Regenerates the benchmark tables in docs/BENCHMARKS.md from the JSON the benchmarks wrote.

``vidrec bench eventful`` writes docs/eventful_bench.json (backbones and batching) and, with
``--bundle``, docs/eventful_stream_bench.json (the streaming model) and
docs/eventful_stream_bench_seed100.json (the same model on other streams); the tables in the
doc are rendered from those files, so no figure is typed in by hand. ``vidrec bench live``
writes docs/live_bench.json and its plot; until that file exists its section says what to run.
(The tables of the lab notes, research/NOTES.md, have their own renderer:
research/render_notes.py.)

python scripts/render_bench_docs.py          # rewrite the tables in place
python scripts/render_bench_docs.py --check  # exit 1 if the doc is stale (the tests do this)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from doc_sections import Section, update_doc

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC = DOCS / "BENCHMARKS.md"
MiB = 1024 * 1024


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCS / name).read_text())
    return data


def _signed(value: float) -> str:
    return f"{value:.1f}".replace("-", "−")  # a typographic minus, as the prose writes it


def _memory(size: int) -> str:
    return f"{size / 1024 / MiB:.2f} GiB" if size >= 1024 * MiB else f"{size / MiB:.1f} MiB"


def backbone_table() -> list[str]:
    lines = [
        "| model | budget | dense ms/frame | eventful ms/frame | wall-clock speed-up "
        "| lowest–highest pass | GMACs/frame | GMAC ratio | feature error |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in _load("eventful_bench.json")["backbones"]:
        model = "ViT-S/16" if "small" in r["model"] else "ViT-B/16"
        low, high = r["speedup_range"]
        lines.append(
            f"| {model} | {r['budget']} | {r['dense_ms']:.0f} | {r['eventful_ms']:.0f} "
            f"| {r['speedup']:.2f}× | {low:.2f}–{high:.2f}× | {r['gmacs']:.2f} "
            f"| {r['gmac_ratio']:.2f}× | {r['final_rel_err']:.2g} |"
        )
    return lines


def batching_table() -> list[str]:
    lines = [
        "| sessions | batched frames/s | one by one frames/s | speed-up | pool memory |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in _load("eventful_bench.json")["batching"]:
        lines.append(
            f"| {r['sessions']} | {r['batched_fps']:.1f} | {r['one_by_one_fps']:.1f} "
            f"| {r['speedup']:.2f}× | {_memory(r['pool_bytes'])} |"
        )
    return lines


def stream_table() -> list[str]:
    rows = _load("eventful_stream_bench.json")["bundle"]
    dense = rows[0]
    lines = [
        f"Dense: {dense['dense_gmacs_per_frame']:.4f} GMACs/frame, "
        f"{dense['dense_ms_per_frame']:.1f} ms/frame, **{100 * dense['dense_top1']:.1f}%** "
        f"per-window top-1 against the ground truth ({100 * dense['dense_top1_pure']:.1f}% on "
        f"pure windows; {dense['windows']} windows, {dense['pure_windows']} pure).",
        "",
        "| budget | GMACs/frame | GMAC ratio | eventful ms/frame | wall-clock ratio "
        "| agreement with dense | eventful top-1 | top-1 lost (points) | 95% interval "
        "| top-1, pure windows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["top1_lost_ci95"]
        lines.append(
            f"| {r['budget']} | {r['gmacs_per_frame']:.4f} | {r['gmac_ratio']:.2f}× "
            f"| {r['eventful_ms_per_frame']:.2f} | {r['wall_clock_ratio']:.2f}× "
            f"| {100 * r['top1_agreement']:.1f}% | {100 * r['eventful_top1']:.1f}% "
            f"| {_signed(r['top1_lost_points'])} | {_signed(low)} to {_signed(high)} "
            f"| {100 * r['eventful_top1_pure']:.1f}% |"
        )
    return lines


def _pooled(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
    """Points lost and GMAC ratio of one budget over two samples of streams, each weighted by
    its windows (a window is as many frames in both)."""
    wa, wb = a["windows"], b["windows"]
    lost = (a["top1_lost_points"] * wa + b["top1_lost_points"] * wb) / (wa + wb)
    dense = a["dense_gmacs_per_frame"] * wa + b["dense_gmacs_per_frame"] * wb
    spent = a["gmacs_per_frame"] * wa + b["gmacs_per_frame"] * wb
    return lost, dense / spent


def first_streams_table() -> list[str]:
    """The check on the streams the per-gate thresholds were chosen on (seeds 100 to 195), with
    each budget over both samples where the main sweep measured it too."""
    data = _load("eventful_stream_bench_seed100.json")
    rows = data["bundle"]
    main_rows = {r["budget"]: r for r in _load("eventful_stream_bench.json")["bundle"]}
    lines = [
        f"Streams: seeds {data['config']['bundle_seed']} to "
        f"{data['config']['bundle_seed'] + data['config']['bundle_streams'] - 1}; dense "
        f"per-window top-1 **{100 * rows[0]['dense_top1']:.1f}%** ({rows[0]['windows']} windows).",
        "",
        "| budget | GMAC ratio | agreement with dense | top-1 lost (points) | 95% interval "
        "| both samples: points lost | both samples: GMAC ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["top1_lost_ci95"]
        both = "| — | — |"
        if r["budget"] in main_rows:
            lost, ratio = _pooled(main_rows[r["budget"]], r)
            both = f"| {_signed(lost)} | {ratio:.2f}× |"
        lines.append(
            f"| {r['budget']} | {r['gmac_ratio']:.2f}× | {100 * r['top1_agreement']:.1f}% "
            f"| {_signed(r['top1_lost_points'])} | {_signed(low)} to {_signed(high)} {both}"
        )
    return lines


TUNING_JSON = ("eventful_stream_bench.json", "eventful_stream_bench_seed100.json")
HELDOUT_JSON = ("eventful_heldout_21920.json", "eventful_heldout_22112.json")


def heldout_tables() -> list[str]:
    """The budgets measured on the tuning streams (pooled) with the pick of
    scripts/recommend_live_budget.py's held-out rule, then each budget on every held-out
    sample and pooled over them."""
    from recommend_live_budget import heldout_pick, pool  # imports torch: only here

    tuning = [_load(name) for name in TUNING_JSON]
    tuned = pool(tuning)
    try:
        picked = heldout_pick(tuned)["budget"]
    except ValueError:
        picked = None
    lines = [
        f"Tuning: {tuned[0]['streams']} streams ({tuned[0]['windows']} windows), dense "
        f"per-window top-1 **{100 * tuned[0]['dense_top1']:.1f}%**.",
        "",
        "| budget | GMAC ratio | top-1 lost (points) | 95% interval | picked |",
        "|---|---:|---:|---:|---|",
    ]
    for r in tuned:
        low, high = r["top1_lost_ci95"]
        lines.append(
            f"| {r['budget']} | {r['gmac_ratio']:.2f}× | {_signed(r['top1_lost_points'])} "
            f"| {_signed(low)} to {_signed(high)} | {'**yes**' if r['budget'] == picked else ''} |"
        )
    if not all((DOCS / name).is_file() for name in HELDOUT_JSON):
        return [*lines, "", "Held out: not measured yet (run the commands above)."]
    heldout = [_load(name) for name in HELDOUT_JSON]
    pooled = {r["budget"]: r for r in pool(heldout)}
    lines += [
        "",
        "Held out: each sample, then all of them pooled; dense per-window top-1 "
        f"**{100 * next(iter(pooled.values()))['dense_top1']:.1f}%** pooled.",
        "",
        "| budget | seeds | windows | dense top-1 | GMAC ratio | top-1 lost (points) "
        "| 95% interval |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, total in pooled.items():
        samples = [
            s
            for report in heldout
            for r in report["bundle"]
            if r["budget"] == label
            for s in r["samples"]
        ]
        for s in samples:
            low, high = s["top1_lost_ci95"]
            lines.append(
                f"| {label} | {s['seeds'][0]} to {s['seeds'][1]} | {s['windows']} "
                f"| {100 * s['dense_top1']:.1f}% | {s['gmac_ratio']:.2f}× "
                f"| {_signed(s['top1_lost_points'])} | {_signed(low)} to {_signed(high)} |"
            )
        low, high = total["top1_lost_ci95"]
        first, last = samples[0]["seeds"][0], samples[-1]["seeds"][1]
        lines.append(
            f"| **{label}** | **pooled, {first} to {last}** | {total['windows']} "
            f"| {100 * total['dense_top1']:.1f}% | **{total['gmac_ratio']:.2f}×** "
            f"| **{_signed(total['top1_lost_points'])}** "
            f"| **{_signed(low)} to {_signed(high)}** |"
        )
    return lines


LIVE_JSON = "live_bench.json"
LIVE_COMMAND = "vidrec bench live --out docs/live_bench.json"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def live_section(data: dict[str, Any] | None) -> list[str]:
    """The ``vidrec bench live`` tables (docs/live_bench.json), or what to run when none was
    recorded yet."""
    if data is None:
        return [
            f"No figures recorded yet: `{LIVE_COMMAND}` writes `docs/{LIVE_JSON}` and its plot, "
            "then `python scripts/render_bench_docs.py` renders them here."
        ]
    m, c = data["machine"], data["config"]
    memory = f", {m['memory_bytes'] / 1024 / MiB:.0f} GiB" if m.get("memory_bytes") else ""
    others = [p["cpu_percent"].get("others") for p in data["points"]]
    busy = [x for x in others if x is not None]
    spread = f"{min(busy):.0f}–{max(busy):.0f}" if busy and min(busy) != max(busy) else ""
    spread = spread or (f"{busy[0]:.0f}" if busy else "")
    noise = f"; other processes used {spread}% CPU (100% = one core)" if busy else ""
    server = (
        f"`vidrec serve` started by the bench, {'defaults' if not c['server_env'] else 'with '}"
        + ", ".join(f"`{k}={v}`" for k, v in c["server_env"].items())
        if c["own_service"]
        else "a running service"
    )
    threads = [
        f"{'/'.join(sorted({str(w.get('torch_threads', '?')) for w in svc['worker_info']}))} "
        f"with {svc['workers']} worker{'s' if svc['workers'] != 1 else ''}"
        for svc in data.get("services", [])
        if svc.get("worker_info")
    ]
    if threads:
        server += "; torch threads per worker: " + ", ".join(threads)
    lines = [
        f"Measured {data['date']} on {m['cpu']}, {m['cores']} cores{memory} ({m['os']}, Python "
        f"{m['python']}){noise}. {server}; {c['fps']:g} fps per stream, {c['duration']:g} s per "
        f"point (latencies without the first {c['warmup']:g} s), stride "
        f"{c['stride'] or 'of the server'}, budget {c['budget'] or 'of the server'}; "
        f"{data['wall_s'] / 60:.1f} minutes in all. Raw figures: [`{LIVE_JSON}`]({LIVE_JSON}).",
    ]
    clips = any(r.get("clips/s") is not None for r in data["rows"])
    timed = any(r.get("event wait") is not None for r in data["breakdown_rows"])
    if clips:
        form = ", ".join(f"`{f}`" for f in c.get("clip_form") or []) or "default form fields"
        lines[0] += (
            f" Beside the streams, {c['clip_load']} clip uploads in flight ({form}); clips/s: "
            "those answered per second of sending."
        )
    lines += [
        "",
        "| workers | frames | streams | opened | ended early | sent | processed | dropped | drop % "
        "| p50 / p95 / p99 ms | server p50 ms | worker CPU % | gateway CPU % "
        "| Redis MiB, start → max | client late % |" + (" clips/s |" if clips else ""),
        "|---:|---|" + "---:|" * (13 + clips),
    ]
    for r in data["rows"]:
        redis = "—"
        if r["Redis MiB"] is not None and r.get("Redis start MiB") is not None:
            redis = f"{r['Redis start MiB']:.1f} → {r['Redis MiB']:.1f}"
        lines.append(
            f"| {r['workers'] or '—'} | {r['frames']} | {r['streams']} | {r['opened']} "
            f"| {r['ended early']} | {r['sent']} | {r['processed']} | {r['dropped']} "
            f"| {_pct(r['drop %'])} "
            f"| {_ms(r['p50 ms'])} / {_ms(r['p95 ms'])} / {_ms(r['p99 ms'])} "
            f"| {_ms(r['server p50 ms'])} | {_pct(r['worker CPU %'])} "
            f"| {_pct(r['gateway CPU %'])} | {redis} | {_pct(r['late %'])} |"
            + (f" {_pct(r.get('clips/s'))} |" if clips else "")
        )
    lines += [
        "",
        f"![p95 latency and drops against streams]({Path(LIVE_JSON).with_suffix('.png')})",
        "",
        "Where a labelled frame's time goes (ms, means over each point):",
        "",
        *(
            [
                "The events' own `timing_ms` of their newest frame: queue wait (arrival at the "
                "gateway to the start of its step), its decode, and the model step it was in.",
                "",
            ]
            if timed
            else []
        ),
        "| workers | frames | streams | round trip | outside server | server | queue + wait "
        "| decode (whole step) | model step | frames per step | decode per frame |"
        + (" events: queue wait | events: decode | events: model step |" if timed else ""),
        "|---:|---|" + "---:|" * (9 + 3 * timed),
    ]
    for r in data["breakdown_rows"]:
        per_step = "—" if r["frames/step"] is None else f"{r['frames/step']:.1f}"
        events = [_ms(r.get(k)) for k in ("event wait", "event decode", "event model")]
        lines.append(
            f"| {r['workers'] or '—'} | {r['frames']} | {r['streams']} | {_ms(r['round trip'])} "
            f"| {_ms(r['outside server'])} | {_ms(r['server'])} | {_ms(r['queue+wait'])} "
            f"| {_ms(r['decode/step'])} | {_ms(r['model step'])} | {per_step} "
            f"| {_ms(r['decode/frame'])} |" + ("".join(f" {e} |" for e in events) if timed else "")
        )
    lines += ["", "Not separated by what the events and metrics carry:", ""]
    lines += [f"- {item}" for item in data["breakdown_missing"]]
    return lines


def _live() -> list[str]:
    path = DOCS / LIVE_JSON
    return live_section(_load(LIVE_JSON) if path.is_file() else None)


# The live default against the earlier one, one sitting (docs/BENCHMARKS.md, "Live streams at
# scale"): one report per default budget.
LIVE_BUDGET_JSON = ("live_bench_budget_threshold2.json", "live_bench_budget_default.json")


def live_budget_table() -> list[str]:
    """Dropped frames, latency and model step per stream count, one row per default budget (the
    service's ``VIDREC_DEFAULT_BUDGET``, else what the live bundle recommends)."""
    points = []
    for name in LIVE_BUDGET_JSON:
        data = _load(name)
        budget = data["config"]["server_env"].get("VIDREC_DEFAULT_BUDGET")
        label = f"`{budget}`" if budget else "the bundle's recommendation"
        points += [(p["streams"], label, p) for p in data["points"]]
    lines = [
        "| default budget | streams | dropped of sent | p50 / p95 ms | model step ms (events) |",
        "|---|---:|---:|---:|---:|",
    ]
    for streams, label, p in sorted(points, key=lambda t: t[0]):
        latency = p["latency_ms"]
        lines.append(
            f"| {label} | {streams} | {p['frames_dropped']} of {p['frames_sent']} "
            f"| {_ms(latency['p50'])} / {_ms(latency['p95'])} "
            f"| {_ms(p['event_timing_ms']['inference'])} |"
        )
    return lines


def _section(name: str, render: Any) -> Section:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return start, end, lambda: "\n".join([start, *render(), end])


SECTIONS = [
    _section("eventful-backbones", backbone_table),
    _section("eventful-batching", batching_table),
    _section("eventful-stream", stream_table),
    _section("eventful-stream-first", first_streams_table),
    _section("eventful-heldout", heldout_tables),
    _section("live-bench", _live),
    _section("live-budget", live_budget_table),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is stale")
    args = parser.parse_args()
    return update_doc(DOC, SECTIONS, check=args.check, script="scripts/render_bench_docs.py")


if __name__ == "__main__":
    raise SystemExit(main())
