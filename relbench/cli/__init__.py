"""The `relbench` command: one module per command (its parser and its work); imports stay inside
commands so `relbench --help` is instant.
"""

from __future__ import annotations

import argparse
import errno
import sys

from relbench.cli import annotate, data, export, lab, list_plugins, report, run, train
from relbench.errors import UsageError

#: command -> the module holding its parser (``add_parser``) and its work (``COMMANDS``)
_MODULES = {"run": run, "report": report, "list": list_plugins, "data": data, "train": train, "export": export,
            "annotate": annotate, "lab": lab}
COMMANDS = {"run": run.cmd_run, "list": list_plugins.cmd_list, "data": data.cmd_data, "train": train.cmd_train,
            "report": report.cmd_report, "compare": report.cmd_compare, "annotate": annotate.annotate_command,
            "lab": lab.cmd_lab, "export": export.export_command}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="relbench",
        description="Evaluation-first benchmark for relation-conditioned image generation.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in _MODULES.values():
        module.add_parser(sub)
    return p


# a full disk, a quota, a read-only or unwritable output: the environment, not a bug
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from relbench.errors import UserError

    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"relbench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write outside relbench.io.atomic (a directory made, a log appended)
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        from relbench.io.atomic import describe

        where = f" {exc.filename}" if exc.filename else ""  # a failed write() names no file
        print(f"relbench: error: cannot write{where}: {describe(exc)}; free space or make the directory "
              f"writable, then run the same command again to resume", file=sys.stderr)
        return 2
    except UsageError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        print("relbench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
