"""`relbench list`: the generators and metrics this install can run, and why the others cannot.
"""

from __future__ import annotations



def add_parser(sub) -> None:
    lst = sub.add_parser("list", help="list generators and metrics (unavailable ones with the reason)")
    lst.add_argument("--config", metavar="FILE", help="also list the plugins this benchmark YAML names (plugins:)")


def cmd_list(args) -> int:
    from relbench.errors import UserError
    from relbench.plugin.registry import GENERATORS, METRICS, load_plugin_modules, summary_line

    if args.config:
        from relbench.spec.config import plugin_search_path, read_benchmark_file

        data, _ = read_benchmark_file(args.config)
        plugins = data.get("plugins") or []
        if not (isinstance(plugins, list) and all(isinstance(m, str) for m in plugins)):
            raise UserError(f"{args.config}: plugins: must be a list of module names")
        load_plugin_modules(plugins, plugin_search_path(args.config))
    for title, reg in (("generators", GENERATORS), ("metrics", METRICS)):
        print(f"{title}:")
        rows = reg.status()
        width = max((len(name) for name, *_ in rows), default=0)
        for name, entry, cls, why in rows:
            text = summary_line(cls) if cls is not None else f"UNAVAILABLE: {why}"
            origin = "" if entry.origin == "built-in" else f"  [{entry.origin}]"
            print(f"  {name.ljust(width)}  {text}{origin}")
    return 0
