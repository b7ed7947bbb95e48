"""``diffveri manifests validate|stats ROOT``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("manifests", help="validate manifest tables or print their statistics")
    msub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = msub.add_parser("validate", help="check every table; exit 1 with the full problem list if any")
    p.add_argument("root", help="data root (holds manifests/)")
    p.add_argument("--no-files", action="store_true", help="skip checking that referenced files exist")
    p.add_argument("--per-kind", type=int, default=50, help="problems shown per table and kind (default 50)")
    p.set_defaults(handler=_validate)
    p = msub.add_parser("stats", help="per-table counts by status/reason and the dataset comparison row")
    p.add_argument("root", help="data root (holds manifests/)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_stats)


def _validate(args: argparse.Namespace) -> int:
    from data_manifests import list_tables, summarize, validate

    tables = list_tables(args.root)
    if not tables:
        print(f"no manifest tables under {args.root}/manifests")
        return 1
    problems = validate(args.root, check_files=not args.no_files)
    print(f"checked {len(tables)} table(s): {', '.join(tables)}")
    print(summarize(problems, per_kind=args.per_kind))
    return 1 if problems else 0


def _stats(args: argparse.Namespace) -> int:
    from data_manifests.stats import format_stats, stats

    result = stats(args.root)
    print(json.dumps(result, indent=2) if args.json else format_stats(result))
    return 0
