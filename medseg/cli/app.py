"""The ``medseg`` command line: a typer app whose commands are thin calls into the API.

Each command group lives in its own module and registers itself here.
"""

from __future__ import annotations

import importlib
import sys

import typer

from medseg._logging import configure_console_logging
from medseg.errors import MedsegError

app = typer.Typer(
    name="medseg",
    help="Medical image segmentation: read scans, train U-Nets, predict, evaluate, measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that define ``register(app)``; each adds its commands.
_COMMAND_MODULES = [
    "medseg.cli.info",
    "medseg.cli.demo",
    "medseg.cli.evaluate",
    "medseg.cli.predict",
    "medseg.cli.anomaly",
    "medseg.cli.train",
]


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug messages."),
) -> None:
    configure_console_logging(verbose=verbose)


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console entry point: runs the app, turning MedsegError into a one-line message."""
    try:
        # In non-standalone mode click returns (not raises) a command's typer.Exit code.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MedsegError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
