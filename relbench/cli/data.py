"""`relbench data vg`: balanced relation splits from Visual Genome's own files (docs/vg.md).

Errors are raised as UserError for the CLI to print as one line.
"""

from __future__ import annotations

import argparse

from relbench.vg.boxes import FITS


def add_vg_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--relationships", required=True, help="VG relationships.json (streamed; ~700 MB is fine)")
    parser.add_argument("--image-data", required=True, help="VG image_data.json (image sizes and urls)")
    parser.add_argument("--images", required=True, help="folder with VG_100K/ and VG_100K_2/ (or the .jpg files flat)")
    parser.add_argument("--out", default="data/splits", help="output folder (default: data/splits)")
    parser.add_argument("--prefix", default="vg", help="file-name prefix: <prefix>_train.jsonl, ... (default: vg)")
    parser.add_argument("--train", type=int, default=800, help="train triples, split evenly over predicates (default: 800)")
    parser.add_argument("--val", type=int, default=160, help="val triples, split evenly over predicates (default: 160)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    parser.add_argument(
        "--predicates", nargs="+", default=None, metavar="P",
        help="predicates to balance over; names or aliases, comma- or space-separated "
        "(default: the seed's 16; multi-word names need quotes or commas)",
    )
    parser.add_argument("--min-box", type=float, default=0.0, metavar="N",
                        help="drop relationships with a box side shorter than N pixels in the original image")
    parser.add_argument("--export-images", type=int, default=None, metavar="SIZE",
                        help="also write SIZE x SIZE reference images and use them (and moved boxes) in the splits")
    parser.add_argument("--fit", choices=FITS, default="crop",
                        help="how photos become square: crop (short side to SIZE, centre crop; default) or pad")
    parser.add_argument("--pool", type=int, default=None, metavar="N",
                        help="candidates kept per predicate while streaming (default: max(1000, 20 x quota))")


def _predicate_list(values: list[str] | None) -> list[str]:
    if values is None:  # default: the seed's 16 (imported late: --help stays instant)
        from relbench.spec.predicates import ORIGIN_PREDICATES

        return list(ORIGIN_PREDICATES)
    out: list[str] = []
    for value in values:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


def vg_command(args: argparse.Namespace) -> int:
    from relbench.vg.build import VGOptions, build_vg_splits

    opts = VGOptions(
        relationships=args.relationships, image_data=args.image_data, images=args.images, out=args.out,
        train=args.train, val=args.val, seed=args.seed, predicates=_predicate_list(args.predicates),
        min_box=args.min_box, export_size=args.export_images, fit=args.fit, prefix=args.prefix, pool=args.pool,
    )
    summary = build_vg_splits(opts)
    for name, split in summary["splits"].items():
        print(f"{args.out}/{split['file']}: {split['items']} triples from {split['images']} images")
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items() if v)
    print(f"{summary['relationships_read']} relationships read, {summary['usable']} usable; dropped: {dropped or 'none'}")
    repeated = summary["entries_repeated"]
    if any(repeated.values()):
        print(f"images listed again, read once from their first entry: {repeated['image_data']} in image_data.json, "
              f"{repeated['relationships']} in relationships.json")
    print(f"counts per predicate: {args.out}/{args.prefix}_counts.json")
    return 0


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="build suites from datasets (Visual Genome)")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATASET", required=True)
    add_vg_arguments(data_sub.add_parser("vg", help="balanced relation splits (JSONL) from Visual Genome's own files"))


def cmd_data(args) -> int:
    return vg_command(args)
