"""``diffveri report grids|filter|stats --root ROOT``: draw the pictures of a data root (pipeline/reports)."""

from __future__ import annotations

import argparse

from data_manifests.cli import add_config_options, add_root, print_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="PNG pictures of a data root: identity grids, filter report, stats charts")
    rsub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = rsub.add_parser(
        "grids",
        help="one PNG per identity: synthesized images in rows by view, subject photos beside them",
        description="Writes ROOT/reports/identities/<identity>.png (or --out DIR/<identity>.png). Captions name the "
        "backend and, once the filter ran, the outcome (kept + confidence, or the reject reason).",
    )
    add_root(p, "data root (holds manifests/)", positional_alias=True)
    p.add_argument("--identities", default=None, help="comma-separated identity ids (default: all with images)")
    p.add_argument("--per-view", type=int, default=4, help="images drawn per view (default 4)")
    p.add_argument("--out", default=None, help="output folder (default ROOT/reports/identities)")
    p.set_defaults(handler=_grids)
    p = rsub.add_parser(
        "filter",
        help="reject reasons and detector-confidence histogram with the review band",
        description="Writes ROOT/reports/filter.png (or --out). The review band is review.uncertain_low/high of the "
        "profile, the dashed line filter.conf_min; with review.checks.enabled the identity and view scores get a "
        "histogram each with their bands.",
    )
    add_root(p, "data root (holds manifests/)", positional_alias=True)
    add_config_options(p, "profile whose thresholds are drawn: toy, paper or a YAML path", required=False,
                       default="toy", example="review.uncertain_high=0.7 to try a band")  # fmt: skip
    p.add_argument("--bins", type=int, default=20, help="histogram bins over [0, 1] (default 20)")
    p.add_argument("--out", default=None, help="output PNG (default ROOT/reports/filter.png)")
    p.set_defaults(handler=_filter)
    p = rsub.add_parser("stats", help="charts of the assembled dataset: views, identities, sources, resolution")
    add_root(p, "data root (holds manifests/)", positional_alias=True)
    p.add_argument("--out", default=None, help="output folder (default ROOT/reports/stats)")
    p.set_defaults(handler=_stats)


def _grids(args: argparse.Namespace) -> int:
    from pipeline.reports import identity_grids

    identities = [i for i in args.identities.split(",") if i] if args.identities else None
    grids = identity_grids(args.root, identities, out_dir=args.out, per_view=args.per_view, progress=True)
    for grid in grids:
        n = sum(len(t) for t in grid.views.values())
        print(f"{grid.path}  ({grid.identity_id}: {n} image(s) drawn in {len(grid.views)} view row(s))")
    if not grids:
        print(f"no ok generations under {args.root}; nothing drawn")
    return 0


def _filter(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.reports import filter_report, report_bands

    config = load_config(args.config, args.overrides)
    if print_config(args, config):
        return 0
    bands = report_bands(config)
    report = filter_report(args.root, args.out, bins=args.bins, **bands)
    print(report.path)
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in report.outcomes.items()))
    for panel in report.panels:
        if panel.band is not None:
            low, high = panel.band
            below = f"; {panel.kept_below_band} below it (rejected by the check)" if panel.column != "conf" else ""
            print(f"{panel.column}: {panel.kept_in_band} kept image(s) in the band [{low:g}, {high:g}){below}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from pipeline.reports import stats_charts

    charts = stats_charts(args.root, args.out)
    for path in charts.paths.values():
        print(path)
    return 0
