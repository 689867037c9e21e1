"""The exceptions the CLI turns into a single line and exit code 2 (a usage error: argparse's usage)."""


class UserError(Exception):
    """Bad input from the user: printed as one line, never with a traceback."""


class UsageError(Exception):
    """A flag combination argparse cannot check: shown as argparse's usage error (exit 2)."""


class ContractError(UserError):
    """A plugin broke its declared contract (relbench.plugin.contract checks it)."""
