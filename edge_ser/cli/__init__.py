"""`edge-ser` command line (also `python -m edge_ser`): the device's commands, plus whatever is installed.

The device commands (`info`, `predict`, `run`, `bench`, `slim`) are this package's. Other packages add theirs
through the entry-point group `edge_ser.commands`: each entry is a function `register(subparsers)` that adds its
commands, as the host package (`converters.cli`: train, laq, zoo, ...) and the workstation tools
(`edge_ser_deploy.cli`: deploy, firstboot) do. So `edge-ser --help` on a device lists what the device can run,
and on a workstation all of it. A command's handler gets the parsed arguments and returns an exit code;
an `EdgeSerError` becomes a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points

# numpy's BLAS (OpenBLAS) starts a thread per core even for one clip's mel frames: `edge-ser features` on 150
# EMODB clips took 2.5x the CPU and 1.7x the wall time of one thread here (docs/live.md, "Threads"), and on a
# device those threads take the cores the live pipeline needs. Set before numpy is imported; a value the user
# set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from edge_ser import __version__  # noqa: E402
from edge_ser.errors import EdgeSerError
from edge_ser.text import printable

COMMAND_GROUP = "edge_ser.commands"
"""Entry-point group of `register(subparsers)` functions that add commands to `edge-ser`."""

Register = Callable[[argparse._SubParsersAction], None]

PROVIDED_COMMANDS = {
    "host": ("features", "data", "synth", "eval", "train", "laq", "demo", "model", "sweep", "zoo"),
    "deploy": ("deploy", "firstboot"),
}
"""The commands each `edge_ser.commands` provider of this project adds (entry-point name: its commands), so an
install without it (the device wheel) says what such a command is and how to get it, not argparse's 'invalid
choice' (tests/test_device_wheel.py checks them against the providers' `register`)."""

_HOW_TO_GET = {
    "host": ("a host command (training, data sets, evaluation)", "pip install '.[host]'"),
    "deploy": ("a workstation command (deploy tools)", "pip install ."),
}


def device_commands() -> list[Register]:
    """The register functions of the commands every install has, in help order."""
    from edge_ser.cli import bench, info, predict, slim
    from edge_ser.live import command

    return [info.register, predict.register, command.register, bench.register, slim.register]


def installed_commands() -> list[tuple[str, Register]]:
    """(entry-point name, register function) of every installed command provider; one that cannot be
    loaded (a broken or half-removed install) is skipped with a warning, so the device commands still run."""
    out = []
    for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            out.append((ep.name, ep.load()))
        except Exception as e:  # noqa: BLE001 - any import failure of a plug-in must not take the CLI down
            warnings.warn(
                f"edge-ser: the {ep.name!r} commands ({ep.value}) cannot be loaded: {e}", stacklevel=2
            )
    return out


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, but a line is never broken at a hyphen: an option named in a help text
    (`--speaker-file`), a data set (`synthetic-av`) or a path stays whole, so it can be copied."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.wrap(text, width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.fill(
            text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
        )


class ArgumentParser(argparse.ArgumentParser):
    """The parser of `edge-ser` and of each command (`add_subparsers(parser_class=...)`): `HelpFormatter` unless
    a command asks for another."""

    def __init__(
        self, *args, formatter_class: type[argparse.HelpFormatter] = HelpFormatter, **kwargs
    ) -> None:  # noqa: ANN002, ANN003 - argparse's signature
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    """The `edge-ser` parser: the device commands, then (with `plugins`) every installed provider's."""
    parser = ArgumentParser(
        prog="edge-ser",
        description="Speech and audio-visual emotion recognition on the edge: run a bundle on files or live, "
        "describe and benchmark it (and, on a workstation, train, compress, export and deploy).",
    )
    parser.add_argument("--version", action="version", version=f"edge-ser {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for register in device_commands():
        register(sub)
    if plugins:
        for _, register in installed_commands():
            register(sub)
    return parser


def short_warnings(who: str) -> Callable[..., str]:
    """A warnings format for the user: our own warnings (a skipped file, an engine provider, a data set's skipped
    record: converters' DatasetWarning, named here as the device package may not have converters) as one line
    `WHO: warning: ...` (`edge-ser CMD`, or a benchmark script's name), without the source file and line that
    Python's format adds, passed through `printable` (a file name it quotes may hold a newline or an escape
    sequence); others as usual."""
    from edge_ser.errors import CacheWarning, InputWarning, ProviderWarning

    default = warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' signature
        if (
            issubclass(category, (InputWarning, ProviderWarning, CacheWarning))
            or category.__name__ == "DatasetWarning"
        ):
            return printable(f"{who}: warning: {message}") + "\n"
        return default(message, category, filename, lineno, line)

    return fmt


def clear_of_progress_bars(show: Callable[..., None]) -> Callable[..., None]:
    """`warnings.showwarning` that clears the tqdm progress bars on screen before `show` prints the warning and
    draws them again below it: a warning said while a bar was drawn (a file eval skipped) started at the bar's
    end, on the bar's line. tqdm is the host commands' (the device install has none): used only when loaded."""

    def wrapped(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        tqdm = sys.modules.get("tqdm")
        if tqdm is None:
            show(message, category, filename, lineno, file, line)
            return
        with tqdm.tqdm.external_write_mode(file=file if file is not None else sys.stderr):
            show(message, category, filename, lineno, file, line)

    return wrapped


def escape_what_stdout_cannot_encode() -> str | None:
    """On a stdout that is not UTF-8 (a Latin-1 or ASCII locale), print what it cannot encode escaped ("\\u2192",
    as stderr does by default) rather than stop in a UnicodeEncodeError: a bundle's labels, a file's name and a
    message may hold any character. Returns the error handler to restore (None: nothing was changed)."""
    out = sys.stdout
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    errors = getattr(out, "errors", None)
    # a C locale without UTF-8 mode (PYTHONUTF8=0) gives ASCII with surrogateescape, which stops on "->" as well
    if errors not in ("strict", "surrogateescape") or encoding == "utf8" or not hasattr(out, "reconfigure"):
        return None
    out.reconfigure(errors="backslashreplace")
    return errors


def not_installed(command: str, installed: list[str]) -> str | None:
    """What `edge-ser COMMAND` says when COMMAND is another provider's (PROVIDED_COMMANDS) and not installed
    here: what it is, what this install has, and how to install it; None for any other name."""
    provider = next((p for p, names in PROVIDED_COMMANDS.items() if command in names), None)
    if provider is None or command in installed:
        return None
    what, install = _HOW_TO_GET[provider]
    return (
        f"edge-ser {command}: error: {what}, not installed here (this install has {', '.join(installed)}); "
        f"on a workstation, from an edge-ser checkout: {install}"
    )


def main(argv: list[str] | None = None) -> int:
    try:  # building the parser imports every installed command's module: a Ctrl-C there is a stop, not a bug
        parser = build_parser()
    except KeyboardInterrupt:
        print("edge-ser: interrupted", file=sys.stderr)
        return 130
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)  # noqa: SLF001
    first = (sys.argv[1:] if argv is None else argv)[:1]
    missing = not_installed(first[0], list(sub.choices)) if first and sub is not None else None
    if missing:
        print(missing, file=sys.stderr)
        return 2
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser (its usage, `edge-ser CMD: error: ...`), not by edge-ser's
        command = sub.choices.get(args.command) if sub is not None and args.command else None
        (command or parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # OpenCV's own log (e.g. "[ WARN:0@0.02] global cap.cpp ... can't capture by name" for every file it is
    # asked to open as a video) repeats what our errors say; a user who wants it sets OPENCV_LOG_LEVEL.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    formatwarning, showwarning = warnings.formatwarning, warnings.showwarning
    warnings.formatwarning = short_warnings(f"edge-ser {args.command}")
    warnings.showwarning = clear_of_progress_bars(showwarning)
    stdout, errors = sys.stdout, escape_what_stdout_cannot_encode()
    try:
        return int(args.func(args) or 0)
    except EdgeSerError as e:
        # a message may quote a bundle's label or a file name: keep its lines, drop escape sequences
        print(printable(f"edge-ser {args.command}: error: {e}", keep_newlines=True), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edge-ser {args.command}: interrupted", file=sys.stderr)
        return 130
    except (
        BrokenPipeError
    ):  # the reader went away (`edge-ser info ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a file or folder the command could not read or write: named by the error itself
        print(printable(f"edge-ser {args.command}: error: {e}"), file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning, warnings.showwarning = formatwarning, showwarning
        if errors is not None:
            with contextlib.suppress(OSError, ValueError):  # stdout closed, or its reader gone
                stdout.reconfigure(errors=errors)


__all__ = [
    "COMMAND_GROUP",
    "PROVIDED_COMMANDS",
    "build_parser",
    "device_commands",
    "installed_commands",
    "main",
    "not_installed",
]
