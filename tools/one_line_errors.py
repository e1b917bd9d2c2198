"""How every tool exits on a bad input: one line on stderr and status 2, no traceback.

Only errors marked ``one_line`` are shortened: those raised inside
``odise_ext.config.early_checks.user_input_errors`` (bad config keys, missing files, no CUDA) and
every ``odise_ext.config.checks.ConfigError`` (a config value that breaks a rule); anything else keeps its traceback. Standard
library only, so a tool can use it before its heavy imports.
"""
import sys

__all__ = ["run"]


def run(main, *args):
    """``main(*args)``; a marked error prints ``error: <message>`` and exits with status 2."""
    try:
        return main(*args)
    except Exception as e:  # noqa: BLE001 - re-raised unless marked
        if not getattr(e, "one_line", False):
            raise
        text = str(e)
        if isinstance(e, KeyError) and e.args and type(e).__str__ is KeyError.__str__:
            text = str(e.args[0])  # KeyError's str() quotes its message
        print(f"error: {text}", file=sys.stderr)
        sys.exit(2)
