"""How the command-line tools report the user's input errors: one line ``error: <message>`` on
stderr and exit status 2 (argparse's status for a bad command line), no traceback.

One rule for every tool: an exception marked ``one_line`` (a :class:`ConfigError`, or any error
raised inside ``odise_ext.config.early_checks.user_input_errors``) is printed as one line; any
other keeps its traceback. ``tools/one_line_errors.py`` applies the same rule for the tools'
``__main__`` (standard library only, usable before their heavy imports).
"""
import functools
import sys

__all__ = ["exit_on_config_error"]


def exit_on_config_error(main):
    """``main`` with an error marked ``one_line`` turned into ``error: ...`` on stderr and
    ``SystemExit(2)``."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - re-raised unless marked
            if not getattr(e, "one_line", False):
                raise
            text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            print(f"error: {text}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped
