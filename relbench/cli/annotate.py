"""`relbench annotate`: serve a plan locally, export it for remote annotators, import their
answers, or summarise them (docs/annotate.md). It writes only under RUN_DIR/human/: the human
judge is computed from those files whenever a run directory is read, never stored in summary.json."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    a = sub.add_parser("annotate", help="collect human judgments on runs' images (local server or offline page)",
                       description="Human judgments: which caption (g+ or g-) matches each image? See docs/annotate.md.")
    a.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    a.add_argument("--annotator", metavar="NAME",
                   help="who answers (1-32 of A-Z a-z 0-9 _ -); required to serve and to export")
    a.add_argument("--n", type=int, default=100, metavar="K", help="items in the plan (default 100)")
    a.add_argument("--seed", type=int, default=0, help="sampling seed of the plan (default 0): the items are the same for all "
                   "annotators, their order is each annotator's own")
    a.add_argument("--question", choices=("caption", "predicate"), default="caption",
                   help="caption (default): which of g+ / g- matches each image; predicate: which relation between the "
                        "tested subject and object img_pos shows, over the predicates the cases ask (the human "
                        "confusion matrix)")
    a.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    a.add_argument("--port", type=int, default=8765, metavar="N", help="port (default 8765)")
    mode = a.add_mutually_exclusive_group()
    mode.add_argument("--export", metavar="DIR",
                      help="write a self-contained offline page for one remote annotator (--annotator)")
    mode.add_argument("--import", dest="import_file", metavar="FILE", help="merge answers downloaded from an exported page")
    mode.add_argument("--summarize", action="store_true",
                      help="only print the human judge and meta-evaluation (computed from the answer files)")


def _plan(args: argparse.Namespace):
    """The plan of this command line, its notes (e.g. why the ceiling has no interval) said first."""
    from relbench.annotate.plan import build_plan

    plan = build_plan(args.run_dirs, n=args.n, seed=args.seed, question=args.question)
    for note in plan.notes:
        print(f"note: {note}", flush=True)
    return plan


def annotate_command(args: argparse.Namespace) -> int:
    from relbench.results.answers import check_annotator
    from relbench.errors import UserError
    from relbench.results.read import load_run_dir
    from relbench.results.human import format_human

    if args.annotator is not None:
        check_annotator(args.annotator)
    if args.summarize:
        for d in args.run_dirs:
            section = load_run_dir(d).summary.get("human")
            print(f"{d}:")
            print(format_human(section))
        return 0
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be 1-65535, got {args.port}")
    if args.import_file:
        from contextlib import ExitStack

        from relbench.annotate.offline import import_answers
        from relbench.io.locks import writer_lock

        with ExitStack() as locks:  # it writes human/ of each run directory
            for d in dict.fromkeys(args.run_dirs):
                locks.enter_context(writer_lock(d, "relbench annotate --import"))
            n, annotator, done = import_answers(args.run_dirs, args.import_file)
            resumed = f" (and {done} an interrupted import of this file had merged)" if done else ""
            print(f"imported {n} answers of {annotator}{resumed}")
        return 0
    if args.export:
        from relbench.annotate.offline import export_page
        from relbench.io.locks import writer_lock

        if args.annotator is None:
            raise UserError("--export needs --annotator NAME: a page is one annotator's (its answers cannot be "
                            "imported under another name); export one page per annotator")
        with writer_lock(args.run_dirs[0], "relbench annotate --export"):  # it writes human/exports.json there
            plan = _plan(args)
            path = export_page(plan, args.export, annotator=args.annotator)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(plan.items)} items, plan {plan.id}); "
              f"send it to {args.annotator}, then `relbench annotate {' '.join(args.run_dirs)} --import ANSWERS.json`")
        return 0
    plan = _plan(args)
    if args.annotator is None:
        raise UserError("--annotator NAME is required to serve (1-32 of A-Z a-z 0-9 _ -)")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UserError("relbench annotate needs starlette and uvicorn: pip install 'relbench[annotate]'") from None
    from relbench.annotate.server import serve

    serve(plan, args.annotator, host=args.host, port=args.port)
    return 0
