"""Package logger set-up: a NullHandler on ``medseg`` so libraries stay quiet.

The CLI (and users) attach handlers; the library never prints.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("medseg")
logger.addHandler(logging.NullHandler())


def configure_console_logging(*, verbose: bool = False) -> None:
    """Attach a single stderr handler to the ``medseg`` logger (used by the CLI)."""
    level = logging.DEBUG if verbose else logging.INFO
    for handler in list(logger.handlers):
        if getattr(handler, "_medseg_console", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._medseg_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
