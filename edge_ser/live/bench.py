"""`edge-ser bench --live`: the live pipeline over file sources, paced in real time, measured.

Per update: stage latencies (capture, features, face, inference, learn, total) with p50 / p99; over the run: the
process's CPU time as a share of one core (CPU seconds / wall seconds, every thread of the process
counted), and resident memory sampled every `rss_every` seconds, with growth measured from the end of a
warm-up to the end of the run. Real-time pacing matters: the CPU share is what the device would spend.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.fileio import atomic_write, report_file
from edge_ser.live.result import LiveResult
from edge_ser.roofline import process_memory_mb
from edge_ser.text import counted


def rss_mb() -> float:
    """Resident set size of this process in MB (0 where /proc is unavailable)."""
    return process_memory_mb() or 0.0


class RssSampler:
    """An output that records (stream time, RSS MB) every `every` seconds of stream time."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._next = 0.0

    def emit(self, r: LiveResult) -> None:
        if r.t >= self._next:
            self.samples.append((r.t, rss_mb()))
            self._next = r.t + self.every

    def close(self) -> None:
        pass


LIVE_UNITS = {"stages": "ms", "rss_mb": "[s, MB]", "cpu_share": "share of one core", "seconds": "s"}
"""The units of the live report's JSON fields (the stages' p50 / p99 / mean carried none)."""


@dataclass
class LiveBenchReport:
    bundle: str
    engine: str
    stream_seconds: float
    wall_seconds: float
    cpu_seconds: float
    cpu_share: float
    updates: int
    speech_updates: int
    updates_per_second: float
    stages: dict[str, dict[str, float]]
    rss_mb: list[tuple[float, float]]
    rss_growth_mb: float
    faces_found: int
    faces_cropped: int
    fallbacks: int
    audio: bool = True
    """Whether the model takes audio (False: a face-only bundle, run on the video's clock)."""
    warmup_seconds: float = 30.0
    """Stream time before which memory samples do not count towards the growth."""
    growth_after_warmup: bool = True
    """False when the run ended before the warm-up did, so the growth is over every sample (warm-up included)."""
    setup: dict = field(default_factory=dict)
    """What was measured, to reproduce it: threads, window, hop, source files, the machine and library versions."""
    frames_reused: tuple[int, int] | None = None
    """(pYIN frames reused from an earlier window, frames transformed) for a functionals front end, else None."""
    utterances_learnt: int = 0
    """Updates that ended an utterance the speaker statistics learnt from: the `learn` stage's count."""

    @property
    def paced(self) -> bool:
        """Whether the file played in real time (not `--fast`): only then is the CPU share that of a live run."""
        return self.wall_seconds >= 0.9 * self.stream_seconds

    def markdown(self) -> str:
        media = ("audio + video" if self.faces_cropped else "audio") if self.audio else "video"
        rows = [
            f"# edge-ser bench --live: {Path(self.bundle).name} on {self.engine}",
            "",
            f"{_seconds(self.stream_seconds)} of {media} {'in real time' if self.paced else 'as fast as it runs (not paced)'} "
            f"({_seconds(self.wall_seconds)} wall), {counted(self.updates, 'update')} ({self.updates_per_second:.2f}/s over "
            "the whole run, the first window's fill included)."
            + (
                f" A short run: p99 over {counted(self.updates, 'update')} is close to the "
                "largest; a run of minutes gives a "
                "real tail."
                if self.updates < SHORT_RUN_UPDATES
                else ""
            ),
            "",
            f"Features and inference over the updates that ran them ({'voice gate open' if self.audio else 'a face in view'}: "
            f"{self.speech_updates} of {self.updates}); learn (the features of an utterance that joins the speaker "
            f"statistics) over the updates that ended one ({self.utterances_learnt}); the other stages over every "
            "update.",
            "",
            "| stage | p50 ms | p99 ms | mean ms |",
            "|---|---|---|---|",
        ]
        rows += [
            f"| {k} | {v['p50']:.2f} | {v['p99']:.2f} | {v['mean']:.2f} |"
            for k, v in self.stages.items()
            if (k != "face" or self.faces_cropped) and (k != "learn" or self.utterances_learnt)
        ]
        first = self.rss_mb[0][1] if self.rss_mb else 0.0
        last = self.rss_mb[-1][1] if self.rss_mb else 0.0
        rows += [
            "",
            f"CPU: {self.cpu_seconds:.1f} s over {self.wall_seconds:.1f} s = **{100 * self.cpu_share:.1f}% of one "
            "core** (the whole process: capture and decoding threads, features, face crops, inference)"
            + (
                "."
                if self.paced
                else "; not paced (--fast), so this is the work per second of a run as fast as it goes, not the "
                "share a live run takes: drop --fast for that."
            ),
            f"Resident memory: {first:.1f} MB at the first sample, {last:.1f} MB at the last "
            f"(t = {self.rss_mb[-1][0] if self.rss_mb else 0:.0f} s of stream time); "
            + (
                f"growth after the {self.warmup_seconds:g} s warm-up {self.rss_growth_mb:+.2f} MB over "
                f"{sum(t >= self.warmup_seconds for t, _ in self.rss_mb)} samples."
                if self.growth_after_warmup
                else f"growth {self.rss_growth_mb:+.2f} MB over {_samples(len(self.rss_mb))}, warm-up included: "
                f"fewer than two samples came after the {self.warmup_seconds:g} s warm-up, so this is not a leak "
                "figure (a run of several minutes gives one)."
            ),
        ]
        if self.faces_cropped:
            rows.append(
                f"Faces found in {self.faces_found} of {self.faces_cropped} crops; {counted(self.fallbacks, 'update')} fell back."
            )
        if self.frames_reused is not None and sum(self.frames_reused):
            reused, computed = self.frames_reused
            rows.append(
                f"pYIN frames reused from an earlier window: {100 * reused / (reused + computed):.0f} % of "
                f"{reused + computed:,}"
                + (
                    " (none in this run: a window shares frames only with an earlier one that overlaps it, and only"
                    " when the hop is a whole number of the features' frame hops)"
                    if reused == 0
                    else ""
                )
                + '; docs/features.md, "Live windows reuse pYIN\'s FFTs".'
            )
        if self.setup:
            rows += ["", "Setup: " + "; ".join(f"{k} {v}" for k, v in self.setup.items()) + "."]
        return "\n".join(rows)


def summarize(stats, *, bundle: str, engine: str, rss: RssSampler, warmup: float = 30.0) -> LiveBenchReport:
    stages = {}
    learnt = 0
    speech = np.asarray(stats.speech, dtype=bool)
    for k, v in stats.stages.items():
        a = np.asarray(v, dtype=np.float64)
        if k in ("features", "inference"):  # these run only when the voice gate is open
            a = a[speech]
        elif k == "learn":  # on the updates that end an utterance the speaker statistics learn from
            a = a[a > 0]
            learnt = int(a.size)
        stages[k] = {
            "p50": float(np.percentile(a, 50)) if a.size else 0.0,
            "p99": float(np.percentile(a, 99)) if a.size else 0.0,
            "mean": float(a.mean()) if a.size else 0.0,
        }
    warmed = [m for t, m in rss.samples if t >= warmup]
    # fewer than two samples after the warm-up give no growth to speak of: all samples then, said so in the report
    after = warmed if len(warmed) >= 2 else [m for _, m in rss.samples]
    growth = (after[-1] - after[0]) if after else 0.0
    wall = max(stats.wall_seconds, 1e-9)
    return LiveBenchReport(
        bundle,
        engine,
        stats.stream_seconds,
        stats.wall_seconds,
        stats.cpu_seconds,
        stats.cpu_seconds / wall,
        stats.updates,
        stats.speech_updates,
        stats.updates / wall,
        stages,
        rss.samples,
        growth,
        stats.faces_found,
        stats.faces_cropped,
        stats.fallbacks,
        warmup_seconds=warmup,
        growth_after_warmup=bool(warmed) and len(warmed) >= 2,
        utterances_learnt=learnt,
    )


def write_report(report: LiveBenchReport, out: Path, command: str) -> tuple[Path, Path]:
    """`out`.json and `out`.md, each written to a temp file and renamed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = (report_file(out, ".json", (".json", ".md")), report_file(out, ".md", (".json", ".md")))
    texts = (
        json.dumps({"command": command, **asdict(report), "units": LIVE_UNITS}, indent=2) + "\n",
        report.markdown() + f"\n\nMade by: `{command}`\n",
    )
    for path, text in zip(paths, texts, strict=True):
        atomic_write(path, text)
    return paths


SHORT_RUN_UPDATES = 100
"""Fewer updates than this: the report says its p99 is close to the largest (a review: p99 of 5 updates)."""


def _samples(n: int) -> str:
    return "its only sample" if n == 1 else f"all {n} samples"


def _seconds(s: float) -> str:
    """A duration for the report: whole seconds, or tenths under 10 s (a --fast run of 0.4 s read "0 s")."""
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def cmd_bench_live(args) -> int:
    import shlex
    import sys

    from edge_ser.bundle import load_bundle
    from edge_ser.cli.common import save_speaker_file
    from edge_ser.live.command import build, too_short

    hears = load_bundle(args.bundle, verify=False).input_kind.hears  # build() loads and verifies it
    if hears and args.audio_file is None:
        live_only = [
            o for o, d in (("--mic", "mic"), ("--camera", "camera")) if getattr(args, d, None) is not None
        ]
        raise ConfigError(
            "--live needs --audio-file FILE (a WAV it plays in real time; and --video-file for an audio-visual "
            "bundle to see faces)"
            + (
                f"; {' and '.join(live_only)} cannot drive it: the bench replays a file so its figures repeat "
                "(`edge-ser run --mic ...` for the live view)"
                if live_only
                else ""
            )
        )
    if not hears and args.video_file is None:
        raise ConfigError(
            "--live with a face-only bundle needs --video-file FILE (a video or a folder of images)"
        )
    from edge_ser.live.command import output_settings
    from edge_ser.live.outputs import make_outputs

    rss = RssSampler(args.rss_every)
    # --json, --web and --overlay as `edge-ser run` has them (they were accepted and ignored); no console table
    with make_outputs(replace(output_settings(args), console=False)) as outputs:
        rec, runner = build(args, outputs=[rss, outputs], keep=1_000_000, command="bench")
        if outputs.web is not None:
            print(f"live page: {outputs.web.url}", file=sys.stderr)
            if outputs.web.elsewhere:
                print(f"  from other machines: {outputs.web.elsewhere}", file=sys.stderr)
        t0 = time.perf_counter()
        stats = runner.run()
    # --speaker-file: build() read it and said "it is written at the end", as `edge-ser run` does; it was not
    saved = save_speaker_file(rec, getattr(args, "speaker_file", None), "--no-adapt")
    if saved:
        print(f"edge-ser bench: {saved}", file=sys.stderr)
    short = too_short(args, stats)
    if short:
        raise ConfigError(short)
    report = summarize(stats, bundle=str(args.bundle), engine=runner.pipeline.engine.name, rss=rss)
    report = replace(
        report,
        audio=hears,
        setup=live_setup(args, runner),
        frames_reused=runner.pipeline.front.frames_reused(),
    )
    from edge_ser.text import printable

    # with --json - the decisions are stdout's, so the report goes to stderr
    say = sys.stderr if args.json == "-" else sys.stdout
    print(printable(report.markdown(), keep_newlines=True), file=say)  # names and labels from the bundle
    if args.out is not None:
        command = "edge-ser " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        j, m = write_report(report, Path(args.out), command)
        print(f"\nwrote {j} and {m} ({_seconds(time.perf_counter() - t0)})", file=say)
    return 0


def live_setup(args, runner) -> dict:
    """What a live bench measured, for its report: engine threads, window and hop, the source files, the
    machine and the versions of the libraries that ran."""
    import platform

    from edge_ser.versions import library_versions

    c = runner.pipeline.config
    versions = library_versions(
        ("edge-ser", "numpy", "onnxruntime", "opencv-python-headless", "ai-edge-litert")
    )
    return {
        "threads": getattr(runner.pipeline.engine, "threads", None) or "the engine's default",
        "window_s": c.window,
        "hop_s": c.hop,
        "vad_db": c.vad_db,
        "vad_voicing": c.vad_voicing,
        "vad_hangover": c.vad_hangover,
        "vad_steady": c.vad_steady,
        "cut_pauses": c.cut_pauses,
        "audio_file": str(args.audio_file) if args.audio_file else None,
        "video_file": str(args.video_file) if args.video_file else None,
        "machine": f"{platform.machine()}, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}",
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
