"""`relbench report` and `relbench compare`: they read run directories and write only the
files asked for (an HTML page; a comparison's CSV and JSON).
"""

from __future__ import annotations



def add_parser(sub) -> None:
    rep = sub.add_parser("report", help="build one offline HTML report for one or more run directories")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rep.add_argument("-o", "--output", metavar="FILE", help="HTML file to write (default: RUN_DIR/report.html)")
    rep.add_argument("--baseline", action="append", metavar="NAME",
                     help="pinned baseline record(s) to compare with (default: those the benchmark declares "
                          "comparable_with)")
    cmp_ = sub.add_parser("compare", help="compare runs with each other and with a pinned baseline record")
    cmp_.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    cmp_.add_argument("--baseline", metavar="NAME", help="a pinned record, e.g. seed-20ep (default: the one the "
                      "benchmark declares comparable_with, else none; see docs/reports.md)")
    cmp_.add_argument("--require-better", metavar="KEY",
                      help="exit 1 unless every run beats the baseline on KEY (one-sided p < 0.05)")
    cmp_.add_argument("-o", "--output", metavar="PREFIX",
                      help="write PREFIX.csv and PREFIX.json (default: compare-DIRS beside the run directories)")


def cmd_report(args) -> int:
    from pathlib import Path

    from relbench.reports import build_report
    from relbench.reports.curves import build_curves, training_dirs

    if all(training_dirs(d) for d in args.run_dirs):  # training / lab output directories: curves
        out = Path(args.output) if args.output else Path(args.run_dirs[0]) / "curves.html"
        info = build_curves(args.run_dirs, out)
        print(f"report: {out} ({info['bytes'] / 1e6:.2f} MB, {info['seconds']:.1f}s)")
        return 0
    out = Path(args.output) if args.output else Path(args.run_dirs[0]) / "report.html"
    info = build_report(args.run_dirs, out, baselines=args.baseline)
    print(f"report: {out} ({info['bytes'] / 1e6:.2f} MB, {info['seconds']:.1f}s)")
    return 0


def cmd_compare(args) -> int:
    from pathlib import Path

    from relbench.results.compare import check_gate_key, compare, declared_baselines, default_output_prefix, format_comparison, gate, write_outputs
    from relbench.results.read import load_run_dir

    dirs = [load_run_dir(d) for d in args.run_dirs]
    # a record only when asked for, or when the benchmark declares itself comparable with it
    baseline = args.baseline or next(iter(declared_baselines(dirs)), None)
    result = compare(dirs, baseline=baseline)
    human = {str(d.path): d.summary["human"] for d in dirs if d.summary.get("human")}
    if args.require_better:
        check_gate_key(result, args.require_better)
        result["gate"] = gate(result, args.require_better)
    print(format_comparison(result))
    if human:
        from relbench.results.human import format_human

        result["human"] = human
        for path, section in human.items():
            print(f"{path}:\n{format_human(section)}")
    prefix = Path(args.output) if args.output else default_output_prefix(args.run_dirs)
    csv_path, json_path = write_outputs(result, prefix)
    print(f"written: {csv_path}, {json_path}")
    if args.require_better:
        failed = [g for g in result["gate"] if not g["better"]]
        for g in result["gate"]:
            verdict = "better" if g["better"] else "NOT better"
            p = "undefined (no standard error)" if g["p_value"] is None else f"{g['p_value']:.3g}"
            print(f"gate: {g['run']} {verdict} than {baseline} on {g['key']} "
                  f"(difference {g['difference']:+.4g}, one-sided p = {p}, need < {g['alpha']})")
        return 1 if failed else 0
    return 0
