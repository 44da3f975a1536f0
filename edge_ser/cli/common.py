"""What several commands share: collecting media files from the paths given, the engine and enrolment options."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

from edge_ser.engines import MAX_THREADS
from edge_ser.errors import AudioFormatError, ConfigError, InputWarning
from edge_ser.fileio import find_files
from edge_ser.inputs.base import AUDIO_EXTENSIONS
from edge_ser.live.sdnotify import keepalive
from edge_ser.text import printable

ENGINE_HELP = (
    "auto (default), onnxruntime, numpy, or tflite (= tflite-int8) / tflite-int8 / tflite-fp16 / tflite-fp32"
)

ArgumentTarget = argparse.ArgumentParser | argparse._ArgumentGroup
"""Where the `add_*_arg` helpers add their options: a command's parser, or one of its argument groups
(`parser.add_argument_group`, which `edge-ser run --help` uses; argparse names its type only privately)."""


def given_path(text: str) -> Path:
    """An argparse `type` for a path: an empty one (an unset shell variable, `edge-ser predict B "$f"`) is refused;
    it was Path("") == ".", and predict classified, or --enroll enrolled, every audio file under the working
    folder."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    return Path(text)


given_path.__name__ = "path"  # argparse names the type in its messages


def given_file(text: str) -> Path:
    """`given_path` for a file to write: a path ending in a separator names a folder (`--speaker-file me/` wrote a
    file named `me`, Path dropping the slash), so it is refused."""
    path = given_path(text)
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(
            f"{text} ends in a separator, so it names a folder: give a file name"
        )
    return path


given_file.__name__ = "file"


def in_range(low: float, high: float | None = None, kind: type = int):  # noqa: ANN201 - an argparse type
    """An argparse `type` that reads a number of `kind` and refuses one outside [low, high] (high None: no upper
    bound, and nan always), so a bad value stops the command before any work, with the option named by argparse."""

    def read(text: str):  # noqa: ANN202
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a{'n integer' if kind is int else ' number'}"
            ) from None
        if not (value >= low and (high is None or value <= high)):  # nan fails both
            what = f"in {low:g}..{high:g}" if high is not None else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{text} must be {what}")
        return value

    read.__name__ = kind.__name__  # argparse names the type in its messages
    return read


def media_files(
    paths: Iterable[Path], extensions: tuple[str, ...] = AUDIO_EXTENSIONS, *, strict: bool = True
) -> list[Path]:
    """The files given, and those with one of `extensions` inside the folders given (recursively, sorted).

    Only regular files: a FIFO, device or socket inside a folder is skipped with an InputWarning, one given
    directly is an AudioFormatError (it would block or never end), as is a path that does not exist; with
    `strict` False (predict without --strict) those are skipped with the warning too, as a folder's are. Hidden
    files inside the folders (macOS's `._take1.wav` resource forks) are passed over, as the data set loaders do.
    """
    return find_files(
        paths, extensions, error=AudioFormatError, what="media files", strict=strict, skip_hidden=True
    )


def add_engine_args(p: ArgumentTarget, *, threads_default: int | None = None) -> None:
    p.add_argument("--engine", default="auto", metavar="NAME", help=ENGINE_HELP)
    default = threads_default if threads_default is not None else "the engine's choice"
    p.add_argument(
        "--threads",
        type=in_range(1, MAX_THREADS),
        default=threads_default,
        metavar="N",
        help=f"inference threads (default: {default})",
    )
    p.add_argument(
        "--delegate",
        metavar="PATH",
        default=None,
        help="tflite engine: load this TFLite delegate library (e.g. libedgetpu.so.1 for a Coral); a missing "
        "or unloadable file is an error naming it",
    )
    p.add_argument(
        "--providers",
        metavar="LIST",
        type=provider_list,
        default=os.environ.get(PROVIDERS_ENV) or None,  # a string default goes through `type` too
        help="onnxruntime engine: execution providers in order of preference, e.g. tensorrt,cuda (a Jetson with "
        f"NVIDIA's onnxruntime-gpu); CPU is always the last resort, and one that cannot load is named in a "
        f"warning (default: ${PROVIDERS_ENV}, else cpu)",
    )


PROVIDERS_ENV = "EDGE_SER_PROVIDERS"
"""`--providers`' default, so a service (edge-ser.service's Environment=) can ask for the GPU without a flag."""


def provider_list(text: str) -> tuple[str, ...]:
    """`--providers tensorrt,cuda` -> the canonical onnxruntime provider names (ArgumentTypeError naming unknown
    ones)."""
    from edge_ser.engines.base import normalize_providers

    names = [t.strip() for t in text.split(",") if t.strip()]
    where = f"(from --providers, or ${PROVIDERS_ENV} when it is not given)"
    if not names:
        raise argparse.ArgumentTypeError(f"give one or more providers, e.g. cuda or tensorrt,cuda {where}")
    try:
        return normalize_providers(names) or ()
    except ConfigError as e:
        raise argparse.ArgumentTypeError(f"{e} {where}") from None


ADAPT_HELP = {
    "all": "all: every file first joins the speaker statistics (unlabelled), then each is classified with them, "
    "so the result does not depend on the files' order (the per-speaker normalisation papers report; each file "
    "is read twice when it is long)",
    "online": "online: the statistics learn file by file in order, as a live session does",
    "off": "off: every file standardised by the training prior alone",
}


def warn_oversubscribed(threads: int | None, command: str, cost: str) -> None:
    """Say on stderr when --threads asks for more engine threads than this process may run on: they then share
    the cores (`cost`: what that does to the command's figures), and fewer threads would do better."""
    from edge_ser.hostbench import usable_cpus
    from edge_ser.text import counted

    cpus = usable_cpus()
    if threads is not None and threads > cpus:
        print(
            f"edge-ser {command}: warning: --threads {threads} on {counted(cpus, 'CPU')} this process may run on: "
            f"the threads share them (oversubscribed), so {cost}; use --threads {cpus} or fewer",
            file=sys.stderr,
        )


def add_adapt_arg(p: argparse.ArgumentParser, default: str, order: tuple[str, ...], lead: str) -> None:
    """`--adapt MODE` (and its older spelling `--no-adapt` = `--adapt off`) for a bundle with speaker
    normalisation; `order`: the modes, as the help lists them."""
    p.add_argument(
        "--adapt",
        choices=order,
        default=DefaultMode(default),
        help=f"{lead} (default {default}): " + "; ".join(ADAPT_HELP[m] for m in order),
    )
    p.add_argument("--no-adapt", action="store_true", help="the same as --adapt off")


class DefaultMode(str):
    """An `--adapt` default: the same text as the mode, marked as not given, so a command can say that a given
    --adapt / --no-adapt does nothing to a bundle without speaker normalisation, and stay quiet otherwise."""


def adapt_mode(args: argparse.Namespace, default: str = "online") -> str:
    """The `--adapt` mode asked for (`--no-adapt` says off). A given `--adapt` other than off beside `--no-adapt`
    is a ConfigError: the two ask for opposite things, and quietly obeying one of them hides the other."""
    adapt = getattr(args, "adapt", default)
    if getattr(args, "no_adapt", False):
        if not isinstance(adapt, DefaultMode) and str(adapt) != "off":
            raise ConfigError(f"--adapt {adapt} and --no-adapt ask for opposite things: give one of them")
        return "off"
    return str(adapt)


def adapt_ignored(args: argparse.Namespace, rec, command: str) -> str | None:
    """The note for a given --adapt / --no-adapt that changes nothing (the bundle has no speaker normalisation):
    it was ignored without a word; None otherwise."""
    given = getattr(args, "no_adapt", False) or not isinstance(getattr(args, "adapt", None), DefaultMode)
    if rec.speaker_clips is not None or not given:
        return None
    return (
        f"edge-ser {command}: note: --adapt {adapt_mode(args)} changes nothing: {args.bundle} has no speaker "
        "normalisation (it applies to bundles made with one; docs/eval.md)"
    )


def add_enroll_arg(p: ArgumentTarget, no_adapt: str = "--adapt off") -> None:
    """`--enroll PATH`; `no_adapt` is how this command says keep the statistics (run: --no-adapt)."""
    p.add_argument(
        "--enroll",
        action="append",
        type=given_path,
        default=None,
        metavar="PATH",
        help="a recording of the speaker, or a folder of them (repeat for more), added to the speaker statistics "
        "before anything is "
        "classified: a bundle with speaker normalisation then starts from the speaker instead of the training "
        "prior (about 30 clips bring it within ~2 points of knowing the speaker; docs/protocol.md); with "
        f"{no_adapt} the statistics then stay those of the enrolment",
    )


def add_speaker_file_arg(p: ArgumentTarget, no_adapt: str = "--adapt off / --no-adapt") -> None:
    """`--speaker-file FILE`; `no_adapt` is how this command says keep the statistics (run: --no-adapt, as it has
    no --adapt)."""
    p.add_argument(
        "--speaker-file",
        type=given_file,
        default=None,
        metavar="FILE",
        help="keep the speaker across sessions: start from the statistics in FILE when it exists (before any "
        "--enroll), and write the session's statistics there at the end (a bundle with speaker normalisation; "
        "when another run saved the same file meanwhile, the clips of both are kept). Nothing is written, and a "
        f"line says so, while it would hold no clip: {no_adapt} learns none from the audio, so "
        "give --enroll beside it to store a speaker",
    )


def load_speaker_file(rec, path: Path | None) -> str | None:
    """`--speaker-file`: the statistics from `path` when it exists; a line saying what happened (None: no file)."""
    if path is None:
        return None
    if rec.speaker_clips is None:  # said now, not after the session
        raise ConfigError(f"--speaker-file: {rec.bundle.root} has no speaker normalisation, nothing to keep")
    check_writable(path, "--speaker-file")  # said now (its folder made, as --json's): written at the end
    if not path.exists():
        return (
            f"speaker file {path} not there yet: starting from the training prior; it is written at the end"
        )
    return f"speaker file {path}: starting from {rec.load_speaker(path)} clip(s) of the speaker"


def file_above(folder: Path) -> Path | None:
    """The file that stops `folder` being made or written in: `folder` itself or the nearest of its parents that
    exists, when that is a file and not a folder; None when nothing there is a file (writing would say only
    "[Errno 20] Not a directory" or "[Errno 17] File exists")."""
    above = Path(folder)
    while not above.exists() and above != above.parent:
        above = above.parent
    return above if above.exists() and not above.is_dir() else None


def check_writable(path: Path, option: str, *, create: bool = True) -> None:
    """Fail now, with one line naming `option`, when `path` could not be written later (not after minutes of
    measuring or a whole live session): its folder is created as writing would (`create`; else it must exist),
    and a temporary file tried in it, as the atomic write will make one (a permission check alone passes as root
    in a folder nothing can be written to, such as /proc)."""
    import tempfile

    folder = Path(path).parent
    if not create and not folder.is_dir():
        raise ConfigError(f"{option} {path}: the folder {folder} does not exist")
    above = file_above(folder)
    if above is not None:  # said as it is, not as "[Errno 17] File exists"
        raise ConfigError(f"{option} {path}: {above} is a file, not a folder")
    if Path(path).is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name in it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot write there ({e.strerror or e})") from None


def save_speaker_file(rec, path: Path | None, no_adapt: str = "--adapt off / --no-adapt") -> str | None:
    """`--speaker-file`: write the session's statistics; a line saying so (None: no file asked for). Nothing is
    written while the statistics hold no clip (nothing enrolled, loaded or learnt), and the line says why
    (`no_adapt`: the command's option that keeps the prior, as in `add_speaker_file_arg`)."""
    if path is None:
        return None
    ours = rec.speaker_clips
    # a file of 0 clips is only the training prior: the next session would start from nothing learnt
    if ours == 0:
        why = (
            f"{no_adapt} learns none from the audio; --enroll FILES adds some"
            if not rec.adapting
            else "none of the audio was speech the speaker statistics take"
        )
        return f"speaker file {path}: not written: no clip of the speaker was learnt ({why})"
    rec.save_speaker(
        path, merge=True
    )  # another run saving the same speaker meanwhile: both runs' clips count
    merged = (rec.speaker_clips or 0) - (ours or 0)
    also = f" ({merged} of them saved there by another run meanwhile)" if merged > 0 else ""
    return f"speaker file {path}: saved {rec.speaker_clips} clip(s) of the speaker{also}"


def enroll_files(
    rec, paths: Iterable[Path], stop=None, *, vad_db: float | None = None, voicing: float | None = None
) -> str:
    """Feed the audio files among `paths` to `rec.enroll_file`, with the run's voice gate (`vad_db`, `voicing`;
    None: the defaults); a line saying how many clips were added. `stop` (an object with `is_set()`, the run's
    Ctrl-C flag) ends the enrolment between two files."""
    gate = {k: v for k, v in (("vad_db", vad_db), ("voicing", voicing)) if v is not None}
    paths = list(paths)
    files = media_files(paths)
    if not files:
        raise AudioFormatError(
            f"--enroll: no {'/'.join(AUDIO_EXTENSIONS)} files in {', '.join(map(str, paths))}"
        )
    clips = done = known = empty = 0
    bad: list[str] = []
    for f in files:
        if stop is not None and stop.is_set():
            break
        # many files on a Pi outlast the service's WatchdogSec before the live loop's first ping
        keepalive()
        done += 1
        try:
            if rec.enrolled(f):
                known += 1
                continue
            added = rec.enroll_file(f, **gate)
            clips += added
            empty += not added
        except AudioFormatError as e:  # as predict skips a file it cannot read (the statistics are unchanged)
            warnings.warn(f"--enroll: skipped {printable(str(e))}", InputWarning, stacklevel=2)
            bad.append(str(f))
    if bad and len(bad) == done:
        raise AudioFormatError(f"--enroll: none of the {done} file(s) could be read")
    line = f"enrolled {clips} clip(s) of speech from {done - len(bad)} file(s)"
    if empty:
        from edge_ser.speaker import MIN_SPEECH_S

        # a 0.2 s sentence was said to be "silence, noise or too quiet": the length rule is one of the reasons
        line += (
            f"; {empty} file(s) held no speech the statistics take (silence, noise, too quiet, or under "
            f"{MIN_SPEECH_S:g} s) and added nothing"
        )
    if bad:
        line += f"; {len(bad)} unreadable file(s) skipped"
    if known:
        line += f"; {known} file(s) were enrolled before (in the speaker file) and are not added twice"
    if done < len(files):
        line += f"; stopped after {done} of {len(files)} files"
    return line


__all__ = [
    "ADAPT_HELP",
    "ENGINE_HELP",
    "adapt_mode",
    "add_adapt_arg",
    "add_engine_args",
    "add_enroll_arg",
    "add_speaker_file_arg",
    "check_writable",
    "enroll_files",
    "file_above",
    "load_speaker_file",
    "media_files",
    "save_speaker_file",
]
