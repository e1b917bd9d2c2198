"""How the command-line tools report a bad config: one line ``error: <message>`` on stderr and
exit status 2 (argparse's status for a bad command line), no traceback."""
import functools
import sys

from ..config.checks import ConfigError

__all__ = ["exit_on_config_error"]


def exit_on_config_error(main):
    """``main`` with a :class:`~odise_ext.config.checks.ConfigError` turned into ``error: ...``
    on stderr and ``SystemExit(2)``."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped
