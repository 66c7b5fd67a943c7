"""From an exception to one line on stderr and an exit code (SPEC §7).

    0  ok
    1  problems found (fsck, a declined confirmation)
    2  usage or bad input (bad names, malformed files, unknown batch or version)
    3  conflict, picture-locked scene, lock timeout
    130 interrupted (Ctrl-C)

A person reads one line that says what went wrong, which file, and what to do next;
``--debug`` shows the traceback for a bug report. Unexpected exceptions are bugs, but
still get one line (and code 2) unless ``--debug`` is given.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from clapboard.cli.settings import Settings
from clapboard.errors import ClapboardError, ConflictError, LockTimeoutError

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_INTERRUPTED = 130


def exit_code_for(error: BaseException) -> int:
    """The documented exit code of an error."""
    if isinstance(error, ConflictError | LockTimeoutError):
        return EXIT_CONFLICT
    if isinstance(error, click.exceptions.Abort | KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_USAGE


def one_line(error: BaseException) -> str:
    """A single readable line describing ``error`` (no newlines, no repr noise)."""
    if isinstance(error, click.UsageError):
        text = error.format_message()
        if error.ctx is not None:
            text = f"{text} (see `{error.ctx.command_path} --help`)"
    elif isinstance(error, click.ClickException):
        text = error.format_message()
    elif isinstance(error, ClapboardError):
        text = str(error)
    elif isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        text = f"{error.strerror}{where}"
    elif isinstance(error, KeyError) and error.args:
        text = f"not found: {error.args[0]}"
    elif isinstance(error, ValueError):
        text = str(error) or type(error).__name__
    else:
        text = (f"internal error {type(error).__name__}: {error}; "
                "rerun with --debug and report the traceback")
    return " ".join(text.split())


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Stop the command with one error line and ``code`` (for checks commands make)."""
    raise CommandFailed(message, code)


class CommandFailed(click.ClickException):
    """A command's own refusal, carrying its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _report(error: BaseException, settings: Settings, argv: Sequence[str]) -> int:
    debug = settings.debug or "--debug" in argv
    if debug and not isinstance(error, click.ClickException):
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, click.exceptions.Abort | KeyboardInterrupt):
        click.echo("clapboard: interrupted; nothing more was written", err=True)
        return EXIT_INTERRUPTED
    click.echo(f"clapboard: error: {one_line(error)}", err=True)
    if isinstance(error, CommandFailed):
        return error.code
    if isinstance(error, click.ClickException):
        return EXIT_USAGE if isinstance(error, click.FileError) else error.exit_code
    return exit_code_for(error)


def run_guarded(run: Callable[[list[str]], Any], args: Sequence[str] | None,
                settings: Settings, *, standalone: bool) -> Any:
    """Run the group; map any error to its line and code; exit (standalone) or return it."""
    argv = list(sys.argv[1:] if args is None else args)
    code: int
    try:
        result = run(argv)
        code = result if isinstance(result, int) else EXIT_OK
    except click.exceptions.Exit as e:
        code = e.exit_code
    except BrokenPipeError:
        # `clapboard log … | head`: the reader left; that is not an error.
        code = EXIT_OK
    except (click.ClickException, click.exceptions.Abort, KeyboardInterrupt,
            ClapboardError, ValueError, KeyError, OSError) as e:
        code = _report(e, settings, argv)
    except Exception as e:  # a bug: still one line unless --debug
        code = _report(e, settings, argv)
    finally:
        if settings.store is not None:
            settings.store.close()
            settings.store = None
    if standalone:
        sys.exit(code)
    return code
