"""``diffveri subjects import ...`` (DreamBooth and synthesis run as stages: ``diffveri run dreambooth|synthesize
--config C --root R``; the tiny Stable Diffusion pipeline is ``diffveri toy sd``, formerly ``models build-toy``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_manifests.cli import add_deprecated_command

from . import toy


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("subjects", help="build the subjects table from real photos")
    ssub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = ssub.add_parser(
        "import",
        help="import identities: --from folder DIR | veri776 ROOT | vehicleid ROOT",
        description="Every image is opened first; any bad file or identity id refuses the whole import "
        "(nothing written). Chosen photos are copied under ROOT/subjects/<identity>/.",
    )
    p.add_argument("--root", required=True, help="data root (manifests under ROOT/manifests)")
    p.add_argument(
        "--from",
        dest="source",
        nargs=2,
        required=True,
        metavar=("KIND", "PATH"),
        help="folder DIR (one sub-folder per identity) | veri776 ROOT | vehicleid ROOT",
    )
    p.add_argument("--per-identity", type=int, default=None, help="photos per identity (default: all / 4)")
    p.add_argument("--identities", type=int, default=None, help="import only the first N identities (sorted)")
    p.add_argument("--class-name", default="car", help="class of folder identities without subject.json")
    p.add_argument("--seed", type=int, default=0, help="seed of the photo choice")
    p.add_argument("--replace", action="store_true", help="overwrite identities imported from another source")
    p.set_defaults(handler=_import)

    parser = sub.add_parser("models", description="Deprecated: use `diffveri toy sd`.")  # not listed in --help
    msub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_deprecated_command(msub, "build-toy", "diffveri toy sd", toy.add_sd_arguments, toy.run_sd)


def _import(args: argparse.Namespace) -> int:
    from pipeline.generate import subjects

    kind, path = args.source
    common = {"limit": args.identities, "seed": args.seed}
    if kind == "folder":
        candidates = subjects.from_folder(
            Path(path), class_name=args.class_name, per_identity=args.per_identity, **common
        )
    elif kind == "veri776":
        candidates = subjects.from_veri776(Path(path), per_identity=args.per_identity or 4, **common)
    elif kind == "vehicleid":
        candidates = subjects.from_vehicleid(Path(path), per_identity=args.per_identity or 4, **common)
    else:
        raise ValueError(f"--from {kind!r}: valid kinds are folder, veri776, vehicleid")
    n = subjects.import_subjects(Path(args.root), candidates, replace=args.replace)
    print(f"imported {n} subject(s) into {Path(args.root) / 'manifests' / 'subjects'}")
    return 0
