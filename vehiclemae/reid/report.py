"""The paper-style comparison table from fine-tuning run folders (``result.json`` of each run).

``python -m vehiclemae.reid.report RUNS_DIR [--markdown OUT]`` reads ``RUNS_DIR/ft-{init}-{mode}[-{dataset}]/
result.json`` (and ``zeroshot-{init}.json`` written by ``vehiclemae eval --json``) and prints one table: rows =
pre-training (none, mae, vehiclemae) within No fine-tuning / Supervised / Unsupervised sections, columns =
VeRi-776 mAP / Rank-1 and VehicleID Rank-1 / Rank-5 (``-`` where not run), like the paper.

A fine-tuning cell is the *test* metric of the run's ``best`` model, which ``vehiclemae finetune`` chooses on
validation identities (``"selection": "validation"``). Cells of runs that did otherwise are marked and explained
under the table: ``(last)`` = no validation, the last epoch; ``(test)`` = a ``result.json`` without ``selection``,
written before validation existed, whose best epoch was chosen on the test set (an optimistic number).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from data_manifests import atomic_write_bytes

INIT_ORDER = ("none", "mae", "vmim", "vehiclemae")
SELECTION_MARKS = {"validation": "", "last_epoch": " (last)", None: " (test)"}
SELECTION_NOTES = {
    " (last)": "- (last): no validation identities (data.val_identities=0), the last epoch's model;",
    " (test)": "- (test): an old result.json whose best epoch was chosen on the test set (optimistic).",
}


def collect(runs: Path) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """``{(mode, init): {dataset: best metrics}}`` from every ``ft-*/result.json`` under ``runs``; fine-tuning
    entries carry the run's ``selection`` (``None`` for a result.json that predates validation)."""
    table: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for path in sorted(runs.glob("ft-*/result.json")):
        parts = path.parent.name.split("-")
        if len(parts) < 3:
            continue
        init, mode = parts[1], parts[2]
        res = json.loads(path.read_text())
        table.setdefault((mode, init), {})[res["dataset"]] = {**res["best"], "selection": res.get("selection")}
    # `vehiclemae eval` JSON of a pre-trained encoder without fine-tuning: zeroshot-{init}[-{dataset}].json
    for path in sorted(runs.glob("zeroshot-*.json")):
        init = path.stem.split("-")[1]
        res = json.loads(path.read_text())
        table.setdefault(("zeroshot", init), {})[res["dataset"]] = res["results"][0]
    return table


def format_table(table: dict[tuple[str, str], dict[str, dict[str, Any]]]) -> str:
    marks: set[str] = set()

    def cell(res: dict[str, Any] | None, key: str) -> str:
        if not res or key not in res:
            return "-"
        mark = SELECTION_MARKS.get(res["selection"], " (test)") if "selection" in res else ""
        marks.add(mark)
        return f"{res[key]:.1f}{mark}"

    lines = [
        "| Pre-training | VeRi-776 mAP | VeRi-776 Rank-1 | VehicleID Rank-1 | VehicleID Rank-5 |",
        "|---|---|---|---|---|",
    ]
    titles = {
        "zeroshot": "No fine-tuning (pre-trained encoder as is)",
        "supervised": "Supervised fine-tuning",
        "unsupervised": "Unsupervised fine-tuning",
    }
    for mode, title in titles.items():
        inits = sorted({i for m, i in table if m == mode}, key=lambda i: (INIT_ORDER + (i,)).index(i))
        if not inits:
            continue
        lines.append(f"| *{title}* | | | | |")
        for init in inits:
            row = table[(mode, init)]
            veri, vid = row.get("veri776"), row.get("vehicleid")
            lines.append(
                f"| {init} | {cell(veri, 'mAP')} | {cell(veri, 'Rank-1')} | {cell(vid, 'Rank-1')} | "
                f"{cell(vid, 'Rank-5')} |"
            )
    notes = [SELECTION_NOTES[m] for m in sorted(marks) if m]
    if notes:
        lines += ["", "Fine-tuned cells are test metrics of the model chosen on validation identities, except:", *notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    table = collect(args.runs)
    if not table:
        raise SystemExit(f"no ft-*/result.json under {args.runs}")
    text = format_table(table)
    print(text)
    if args.markdown:
        atomic_write_bytes(args.markdown, (text + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
