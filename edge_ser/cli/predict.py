"""`edge-ser predict BUNDLE FILES...`: classify files with a bundle (a thin wrapper over `Recognizer`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from edge_ser.audio.level import SILENCE_DB
from edge_ser.cli.common import (
    adapt_ignored,
    adapt_mode,
    add_adapt_arg,
    add_engine_args,
    add_enroll_arg,
    add_speaker_file_arg,
    enroll_files,
    given_path,
    load_speaker_file,
    media_files,
    save_speaker_file,
)
from edge_ser.errors import AudioFormatError, ConfigError, InputWarning
from edge_ser.fileio import unread_files
from edge_ser.inputs.fusion import FusionKind
from edge_ser.recognizer import counted_windows, marks_text
from edge_ser.text import printable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify audio files (video with an audio-visual bundle, images or video with a face bundle)",
        description="Each file through the bundle's own input pipeline (`edge-ser info BUNDLE` says which: the "
        "clip's functionals or feature vector, log-Mel patches voted per clip; a face bundle, face crops of an image or "
        "a video's frames through its Haar search; av_cnn, 6 sampled frames and the audio track as MFCC segments; "
        "a fusion bundle, each branch's own), then the bundle on an engine. Folders are searched recursively.",
    )
    p.add_argument("bundle", type=given_path, help="bundle folder or .tar")
    p.add_argument(
        "files",
        nargs="+",
        type=given_path,
        help="audio files or folders (audio-visual bundles: video files; face bundles: images or video files)",
    )
    add_engine_args(p)
    p.add_argument("--top", type=int, default=None, metavar="N", help="labels to show per file (default 3)")
    p.add_argument(
        "--windows",
        action="store_true",
        help="also print each window of a long file (over 30 s: 3 s windows with their times)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per file on stdout (label, probabilities, duration, windows with start/end)",
    )
    add_adapt_arg(
        p,
        "all",
        ("all", "online", "off"),
        "how a bundle with speaker normalisation learns the speaker from the files, taken as one speaker; with "
        "files of many speakers, all pools them",
    )
    add_enroll_arg(p)
    add_speaker_file_arg(p)
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first file that cannot be read (default: skip it with a warning naming it)",
    )
    p.set_defaults(func=cmd_predict)


def _top(probabilities: dict[str, float], k: int) -> str:
    best = sorted(probabilities.items(), key=lambda kv: -kv[1])[:k]
    return printable(", ".join(f"{lab} {p:.2f}" for lab, p in best))


def _marks(r, fused: bool = False) -> str:  # noqa: ANN001 - a Prediction
    """The prediction's marks (`Prediction.marks`, the one rule) as the text view prints them after the label."""
    return marks_text(r.marks(fused))


def _window_marks(w) -> str:  # noqa: ANN001 - a WindowPrediction
    """A window's marks: no face in its frames, no speech in it, out of range."""
    marks = ["no face"] if w.face_found is False else []
    if w.level_db is not None and w.level_db < SILENCE_DB:
        marks.append("no speech")
    if w.ood:
        marks.append("out of range")
    return "".join(f"  [{m}]" for m in marks)


def display_names(files: list[Path]) -> dict[str, str]:
    """How each file is named in the text output: its name, or, where two files share a name (angry/take1.wav and
    sad/take1.wav), its path below the files' common folder."""
    names = [f.name for f in files]
    if len(set(names)) == len(names):
        return {str(f): n for f, n in zip(files, names, strict=True)}
    absolute = [f.resolve() for f in files]  # one relative and one absolute path cannot share a common path
    root = Path(os.path.commonpath([str(f.parent) for f in absolute]))
    return {str(f): str(a.relative_to(root)) for f, a in zip(files, absolute, strict=True)}


class LearnProgress:
    """`done/total` of predict's first pass (`--adapt all` learns the speaker from every file before any result),
    redrawn on one line of a terminal; nothing when stderr is not one."""

    def __init__(self, stream=None) -> None:  # noqa: ANN001 - a text stream (default: sys.stderr)
        from edge_ser.live.outputs.console import is_tty

        stream = sys.stderr if stream is None else stream
        self.stream = stream if is_tty(stream) else None

    def __call__(self, done: int, total: int) -> None:
        if self.stream is None or total < 2:
            return
        end = "\n" if done == total else ""
        print(
            f"\r  learning the speaker from every file first: {done}/{total}",
            end=end,
            file=self.stream,
            flush=True,
        )


def _window_span(windows) -> str:  # noqa: ANN001 - WindowPredictions
    """How long a long file's windows are: "3 s", or "3 s (the last 4 s)" when the file's tail made the last one
    longer (a tail under half a window joins it) or shorter (a tail of its own)."""
    size, last = windows[0].end - windows[0].start, windows[-1].end - windows[-1].start
    if len(windows) == 1 or abs(last - size) < 5e-3:
        return f"{size:g} s"
    return f"{size:g} s (the last {last:.3g} s)"


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:06.3f}" if h else f"{m}:{s:06.3f}"


def one_speaker_note(learnt: int, total: int, adapt: str) -> str | None:
    """The note that the speech of several files was learnt as one person's voice (documented in --help, said when
    it applies: a user review), counting the files whose audio joined the speaker statistics, not the files given
    (images, silent videos, silence and unreadable files teach nothing); None when fewer than two did."""
    if learnt < 2:
        return None
    which = f"the {learnt} files" if learnt == total else f"{learnt} of the {total} files (those with speech)"
    return (
        f"  (the speech in {which} was learnt as one speaker's voice, which the results are adjusted to "
        f"(--adapt {adapt}): for files of several speakers, predict each speaker's files in a call of their own, "
        "or give --adapt off)"
    )


def _summary(rec, args: argparse.Namespace, say, n: int, inference_ms: float, bad: list) -> None:
    """The closing lines: files and inference time (not with --json), the files learnt as one speaker, and files
    not learnt twice."""
    if not args.json:
        skipped = f", {len(bad)} unreadable file(s) skipped" if bad else ""
        print(f"  ({rec.engine.name}: {n} file(s), inference {inference_ms:.2f} ms{skipped})")
    note = one_speaker_note(rec.files_learnt, n + len(bad), adapt_mode(args, "all"))
    if note:
        print(note, file=say)
    if rec.files_known:
        print(
            f"  ({rec.files_known} file(s) were learnt before (enrolled, in the speaker file, or given twice) and "
            "are not added twice)",
            file=say,
        )


def json_ignored(args: argparse.Namespace) -> str | None:
    """The note for a given --top / --windows beside --json, which they do not shape (each JSON object holds every
    label's probability and every window): they were ignored without a word; None otherwise."""
    given = [o for o, v in (("--top", args.top is not None), ("--windows", args.windows)) if v]
    if not args.json or not given:
        return None
    return (
        f"edge-ser predict: note: {' and '.join(given)} do{'es' if len(given) == 1 else ''} not apply to --json "
        "(each object holds every label's probability and every window)"
    )


def not_read_note(paths: list[Path], extensions: tuple[str, ...]) -> str | None:
    """The note naming the files inside the folders given that are passed over for their extension (a .w64 or a
    .txt beside the clips were skipped without a word, while the data set loaders count theirs: `unread_files`,
    their rule, so hidden files stay silent); None when there are none."""
    unread = [f for p in paths if Path(p).is_dir() for f in unread_files(p, extensions)]
    if not unread:
        return None
    kinds = sorted({f.suffix.lower() or "(none)" for f in unread})
    return (
        f"edge-ser predict: note: {len(unread)} file(s) in the folder(s) given not read for their extension "
        f"({', '.join(kinds)}; this bundle reads {', '.join(extensions)})"
    )


def cmd_predict(args: argparse.Namespace) -> int:
    from edge_ser.recognizer import Recognizer

    if args.top is not None and args.top < 1:
        raise ConfigError(f"--top {args.top}: show at least 1 label per file (default 3)")
    top = 3 if args.top is None else args.top
    adapt = adapt_mode(args, "all")
    rec = Recognizer(
        args.bundle,
        args.engine,
        threads=args.threads,
        adapt=adapt != "off",
        delegate=getattr(args, "delegate", None),
        providers=getattr(args, "providers", None),
    )
    say = sys.stderr if args.json else sys.stdout  # --json keeps stdout for the results
    for note in filter(None, (adapt_ignored(args, rec, "predict"), json_ignored(args))):
        print(note, file=sys.stderr)
    loaded = load_speaker_file(rec, getattr(args, "speaker_file", None))
    if loaded:
        print(f"  ({loaded})", file=say)
    if getattr(args, "enroll", None):
        print(f"  ({enroll_files(rec, args.enroll)})", file=say)
    # several paths: one that is missing is skipped with a warning; a single one that is missing is the error
    files = media_files(
        args.files, rec.kind.file_extensions, strict=getattr(args, "strict", False) or len(args.files) == 1
    )
    if not files:
        raise AudioFormatError(
            f"no {'/'.join(rec.kind.file_extensions)} files in {', '.join(str(f) for f in args.files)}"
        )
    unread = not_read_note(args.files, rec.kind.file_extensions)
    if unread:
        print(unread, file=sys.stderr)
    fused = isinstance(rec.kind, FusionKind)
    n, inference_ms, bad = 0, 0.0, []

    def skip(path: Path, error: Exception) -> None:  # one bad file in a folder does not stop the others
        bad.append(path)
        warnings.warn(f"skipped {printable(str(error))}", InputWarning, stacklevel=2)

    strict = getattr(args, "strict", False)
    names = display_names(files)
    results = rec.iter_predict_files(
        files, on_bad_file=None if strict else skip, learn_first=adapt == "all", progress=LearnProgress()
    )
    for r in results:
        n += 1
        inference_ms += r.timings.get("inference", 0.0)
        if args.json:
            print(json.dumps({**r.to_dict(), "marks": r.marks(fused)}), flush=True)
            continue
        name = printable(names.get(str(r.source), Path(r.source or "?").name))
        if not r.windows:
            print(f"  {name}: {_top(r.probabilities, top)}{_marks(r, fused)}", flush=True)
            continue
        w = r.windows
        counted = len(counted_windows(w, rec.kind))
        those = "a face" if not rec.kind.hears else "speech"
        of = f"{counted} of {len(w)} (those with {those})" if counted < len(w) else len(w)
        print(
            f"  {name}: {_top(r.probabilities, top)}  (mean of {of} windows of {_window_span(w)} covering "
            f"0:00-{_clock(r.duration or 0.0)}){_marks(r, fused)}",
            flush=True,
        )
        if args.windows:
            for x in w:
                print(
                    f"    {_clock(x.start)}-{_clock(x.end)}  {_top(x.probabilities, top)}{_window_marks(x)}"
                )
    _summary(rec, args, say, n, inference_ms, bad)
    if not n:
        raise AudioFormatError(f"none of the {len(files)} file(s) could be read ({len(bad)} skipped)")
    saved = save_speaker_file(rec, getattr(args, "speaker_file", None))
    if saved:
        print(f"  ({saved})", file=say)
    return 0
