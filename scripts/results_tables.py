"""Markdown tables from the toy experiment's ``results.json`` (``scripts/reproduce_toy.py``).

    python scripts/results_tables.py RESULTS.json [RESULTS.json ...] [--update docs/benchmarks.md]

Prints one section per file: the training-free baselines, then per protocol the conditions with mean ± std over
seeds of mAP, Rank-1, cross-view and same-view mAP, and the paired mAP difference to ``mae`` (per seed, then mean ±
std; ``n/n`` = seeds where the condition is ahead). With ``--update FILE`` each section replaces the text between
``<!-- reproduce-toy:PROFILE:begin -->`` and ``<!-- reproduce-toy:PROFILE:end -->`` in FILE (the markers must exist;
``--marker NAME`` picks another block).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

PROTOCOL_NAMES = {
    "frozen_knn_mean": "Frozen encoder, kNN on mean-pooled patch tokens",
    "frozen_knn_cls": "Frozen encoder, kNN on the class token",
    "linear_probe": "Linear probe on frozen features (epochs chosen on validation identities)",
    "supervised": "Supervised fine-tuning (model chosen on validation identities)",
    "unsupervised": "Unsupervised fine-tuning (cluster contrast; model chosen on validation identities)",
}
# Paired ablations: (condition, reference, what the difference measures).
ABLATIONS = (
    ("vmim", "vmim_symmetric", "paired asymmetric vs symmetric masks (no PPMD)"),
    ("vehiclemae", "vehiclemae_same_patches", "PPMD target complementary vs same_patches"),
    ("vehiclemae", "vmim", "PPMD vs no PPMD"),
    ("vehiclemae", "vehiclemae_fg1", "body weighting (fg floor 0.1 vs 1)"),
)
COLUMNS = (
    ("mAP", "mAP"),
    ("rank1", "Rank-1"),
    ("cross_view_mAP", "cross-view mAP"),
    ("same_view_mAP", "same-view mAP"),
)


def mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def paired(rows: dict[int, dict[str, Any]], ref: dict[int, dict[str, Any]], key: str = "mAP") -> str:
    """Mean ± std of the per-seed ``key`` difference to the reference condition, and how many seeds are ahead."""
    seeds = sorted(set(rows) & set(ref))
    diffs = [rows[s][key] - ref[s][key] for s in seeds if rows[s].get(key) is not None and ref[s].get(key) is not None]
    if not diffs:
        return "-"
    ahead = sum(d > 0 for d in diffs)
    spread = f" ± {statistics.stdev(diffs):.1f}" if len(diffs) > 1 else ""
    return f"{statistics.mean(diffs):+.1f}{spread} ({ahead}/{len(diffs)})"


def twin_note(rows: dict[int, dict[str, Any]]) -> str:
    """The suffix of a condition's name when its cells were copied from another condition's identical encoder,
    e.g. `` (encoder identical to mae)``, naming the seeds when only some of them were copied."""
    copied = {
        seed: r["extra"]["same_encoder_as"] for seed, r in rows.items() if r.get("extra", {}).get("same_encoder_as")
    }
    if not copied:
        return ""
    names = ", ".join(sorted(set(copied.values())))
    if len(copied) == len(rows):
        return f" (encoder identical to {names})"
    seeds = ", ".join(map(str, sorted(copied)))
    return f" (encoder identical to {names} for seed{'s' if len(copied) > 1 else ''} {seeds})"


def section(results: dict[str, Any]) -> str:
    base = results["baselines"]
    world = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in results["world"].items())
    pool = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in results["pretrain_world"].items())
    seeds = sorted({r["seed"] for r in results["rows"]})
    lines = [
        f"Profile `{results['profile']}`, commit `{results['commit'][:10]}`, seeds {seeds}; benchmark world "
        f"`diffveri toy world {world}`, pre-training world `{pool}` ({results.get('pretrain_source', 'toyworld')} "
        f"table); pre-training {results['budget']['pretrain']}, fine-tuning {results['budget']['finetune']}"
        + (f"; profile overrides `{' '.join(results['overrides'])}`." if results.get("overrides") else ".")
        + (" **Partial: the cells finished when the report was written.**" if results.get("partial") else ""),
        "",
        "Training-free baselines on the same test split: colour histogram of the centre crop "
        f"**mAP {base['hist_map']:.1f}** (Rank-1 {base['hist_r1']:.1f}), family-attribute oracle "
        f"mAP {base['oracle_map']:.1f}, chance mAP {base['chance_map']:.1f}.",
        "",
    ]
    runs = results.get("pretrain_runs") or {}
    if runs:
        lines.append("| pre-training run | optimiser steps | images seen | wall time (s) |")
        lines.append("|---|---|---|---|")
        for name, budget in sorted(runs.items()):
            lines.append(f"| {name} | {budget['steps']} | {budget['images_seen']} | {budget['seconds']:.0f} |")
        lines.append("")
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for row in results["rows"]:
        by.setdefault((row["protocol"], row["pretrain"]), {})[row["seed"]] = row
    conditions = list(dict.fromkeys(r["pretrain"] for r in results["rows"]))
    for protocol in PROTOCOL_NAMES:
        present = [c for c in conditions if (protocol, c) in by]
        if not present:
            continue
        lines.append(f"**{PROTOCOL_NAMES[protocol]}**")
        lines.append("")
        lines.append("| pre-training | " + " | ".join(title for _, title in COLUMNS) + " | mAP − mae (seeds ahead) |")
        lines.append("|---" * (len(COLUMNS) + 2) + "|")
        ref = by.get((protocol, "mae"), {})
        for condition in present:
            rows = by[(protocol, condition)]
            cells = [mean_std([r.get(key) for r in rows.values()]) for key, _ in COLUMNS]
            diff = "" if condition == "mae" else paired(rows, ref)
            name = condition + twin_note(rows)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {diff} |")
        lines.append("")
    lines += ablation_table(by)
    return "\n".join(lines)


def ablation_table(by: dict[tuple[str, str], dict[int, dict[str, Any]]]) -> list[str]:
    """Paired per-seed differences of each ablation pair in :data:`ABLATIONS` that the results hold."""
    rows = []
    for protocol in PROTOCOL_NAMES:
        for condition, reference, what in ABLATIONS:
            a, b = by.get((protocol, condition)), by.get((protocol, reference))
            if a and b:
                rows.append(
                    f"| {what} | `{condition}` − `{reference}` | {protocol} | {paired(a, b)} | "
                    f"{paired(a, b, 'cross_view_mAP')} |"
                )
    if not rows:
        return []
    return [
        "**Ablations** (paired per seed; mean ± std of the difference, seeds where the first is ahead)",
        "",
        "| what | difference | protocol | mAP | cross-view mAP |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def update(doc: Path, profile: str, text: str) -> None:
    begin, end = f"<!-- reproduce-toy:{profile}:begin -->", f"<!-- reproduce-toy:{profile}:end -->"
    content = doc.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{doc}: markers {begin} ... {end} not found; add them where the table belongs")
    new = pattern.sub(lambda _: f"{begin}\n{text}\n{end}", content)
    tmp = doc.with_name(f".{doc.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results.json files of scripts/reproduce_toy.py")
    parser.add_argument("--update", default=None, help="a Markdown file with reproduce-toy:PROFILE markers")
    parser.add_argument("--marker", default=None, help="the block to rewrite (default: the results' profile name)")
    args = parser.parse_args(argv)
    for path in args.results:
        p = Path(path)
        if not p.is_file():
            print(f"{p} does not exist (run `make reproduce-toy PROFILE=...` first)", file=sys.stderr)
            return 2
        results = json.loads(p.read_text())
        text = section(results)
        print(f"## {results['profile']}\n\n{text}")
        if args.update:
            update(Path(args.update), args.marker or results["profile"], text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
