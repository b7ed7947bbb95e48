"""``diffveri manifests validate|repair|stats --root ROOT``."""

from __future__ import annotations

import argparse
import json
import sys

from data_manifests.cli import add_root


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("manifests", help="validate manifest tables or print their statistics")
    msub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = msub.add_parser("validate", help="check every table; exit 1 with the full problem list if any")
    add_root(p, "data root (holds manifests/)", positional_alias=True)
    p.add_argument("--no-files", action="store_true", help="skip checking that referenced files exist")
    p.add_argument("--per-kind", type=int, default=50, help="problems shown per table and kind (default 50)")
    p.set_defaults(handler=_validate)
    p = msub.add_parser(
        "repair",
        help="rebuild a lost or damaged _current.json from the table's part files (asks first)",
        description="Shows what it would do for each table, asks for confirmation (or --yes), then rebuilds "
        "pointers that are missing, empty, unreadable or name paths outside their folder, from the part files "
        "beside them, and records missing part checksums. Unreadable parts are set aside as damaged-<name>.",
    )
    add_root(p, "data root (holds manifests/)", positional_alias=True)
    p.add_argument("--table", action="append", default=None, help="only this table (repeatable; default: all)")
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.set_defaults(handler=_repair)
    p = msub.add_parser("stats", help="per-table counts by status/reason and the dataset comparison row")
    add_root(p, "data root (holds manifests/)", positional_alias=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--charts",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="also draw the dataset charts (views, identities, sources, resolution) as PNGs into DIR "
        "(default ROOT/reports/stats) and print their paths",
    )
    p.set_defaults(handler=_stats)


def _validate(args: argparse.Namespace) -> int:
    from data_manifests import list_tables, summarize, validate

    tables = list_tables(args.root)
    if not tables:
        print(f"no manifest tables under {args.root}/manifests")
        return 1
    problems = validate(args.root, check_files=not args.no_files, warnings=True, progress=True)
    print(f"checked {len(tables)} table(s): {', '.join(tables)}")
    print(summarize(problems, per_kind=args.per_kind))
    return 1 if any(p.severity == "error" for p in problems) else 0


def _repair(args: argparse.Namespace) -> int:
    from data_manifests import apply_repair, list_tables, plan_repair

    tables = args.table or list_tables(args.root)
    if not tables:
        raise FileNotFoundError(f"no manifest tables under {args.root}/manifests")
    plans = [plan_repair(args.root, t) for t in tables]
    for plan in plans:
        print(plan.describe())
    todo = [plan for plan in plans if plan.action != "none"]
    if not todo:
        print("nothing to repair")
        return 0
    if not args.yes and not _confirm(f"apply these {len(todo)} repair(s)? [y/N] "):
        raise ValueError("repair not confirmed; nothing was changed (run again and answer y, or pass --yes)")
    for plan in todo:
        apply_repair(args.root, plan)
        print(f"{plan.table}: repaired")
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(question).strip().lower() in ("y", "yes")


def _stats(args: argparse.Namespace) -> int:
    from data_manifests.stats import format_stats, stats

    result = stats(args.root)
    if args.charts is not None:
        from pipeline.reports import stats_charts

        charts = stats_charts(args.root, args.charts or None)
        result["charts"] = {name: str(path) for name, path in charts.paths.items()}
    print(json.dumps(result, indent=2) if args.json else format_stats(result))
    if args.charts is not None and not args.json:
        print("\ncharts:")
        print("\n".join(f"  {name:<11} {path}" for name, path in result["charts"].items()))
    return 0
