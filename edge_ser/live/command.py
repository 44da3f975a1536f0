"""`edge-ser run BUNDLE`: the live demo from a microphone and a camera, or the same pipeline on files.

edge-ser run bundles/av_cnn                                   # default mic + camera 0
edge-ser run bundles/av_cnn --camera /dev/video2 --mic USB --web 8000
edge-ser run bundles/av_cnn --audio-file clip.wav --video-file clip.mp4 --fast --json -
edge-ser run bundles/squeezenet_lms --audio-file clip.wav --fast --json -   # log-Mel patches: audio only
edge-ser run bundles/ser_ravdess --enroll my_voice/     # start from the speaker's statistics, not the prior
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from edge_ser.cli.common import (
    add_engine_args,
    add_enroll_arg,
    add_speaker_file_arg,
    enroll_files,
    given_path,
    in_range,
    load_speaker_file,
    save_speaker_file,
    warn_oversubscribed,
)
from edge_ser.errors import ConfigError
from edge_ser.live.capture import CaptureSettings
from edge_ser.live.pipeline import (
    CUT_PAUSES_DEFAULT,
    LEARN_DEFAULT,
    LEARN_MODES,
    MIN_WINDOW,
    STEADY_DEFAULT,
    VOICING_DEFAULT,
)
from edge_ser.live.run import audio_ended_note, gate_note, utterance_note
from edge_ser.live.run import too_short as run_too_short
from edge_ser.text import counted, printable


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=given_path, help="bundle folder or .tar")
    src = p.add_argument_group("sources (default: the default microphone, and camera 0 for an AV bundle)")
    src.add_argument("--mic", default=None, help="microphone: PortAudio index or part of its name")
    src.add_argument(
        "--channels", type=in_range(1), default=1, help="microphone channels captured (default 1)"
    )
    src.add_argument(
        "--mic-rate",
        type=in_range(1),
        default=None,
        metavar="HZ",
        help="open the microphone at this rate (default: the model's rate if the device takes it, else its "
        "default rate, else 48000, 44100, ...); the audio is resampled to the model's rate",
    )
    src.add_argument(
        "--audio-file",
        type=given_path,
        default=None,
        metavar="FILE",
        help="an audio file (WAV, FLAC, Ogg, MP3, ...) instead of the microphone",
    )
    src.add_argument(
        "--camera",
        default=None,
        metavar="SOURCE",
        help="camera: index, /dev/videoN, a GStreamer pipeline (Pi camera / Jetson CSI) or an RTSP URL",
    )
    src.add_argument(
        "--width", type=int, default=640, metavar="PIXELS", help="camera frame width (default 640)"
    )
    src.add_argument(
        "--height", type=int, default=480, metavar="PIXELS", help="camera frame height (default 480)"
    )
    src.add_argument("--fps", type=float, default=None, help="camera frame rate (default: the camera's)")
    src.add_argument(
        "--video-file",
        type=given_path,
        default=None,
        metavar="PATH",
        help="a video file or an image folder instead of the camera",
    )
    src.add_argument(
        "--image-fps",
        type=float,
        default=25.0,
        metavar="FPS",
        help="frame rate of an image folder (default 25)",
    )
    src.add_argument(
        "--fast",
        action="store_true",
        help="files: as fast as possible (reproducible) instead of paced in real time",
    )
    m = p.add_argument_group("model and pipeline")
    add_engine_args(m, threads_default=1)
    m.add_argument(
        "--fallback",
        type=given_path,
        default=None,
        metavar="BUNDLE",
        help="an audio-only bundle used when no face is seen (AV bundles)",
    )
    m.add_argument(
        "--window",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="seconds of audio per decision (default 3)",
    )
    m.add_argument(
        "--hop", type=float, default=0.5, metavar="SECONDS", help="seconds between decisions (default 0.5)"
    )
    m.add_argument(
        "--smoothing",
        choices=("ema", "majority", "none"),
        default="ema",
        help="how successive windows' probabilities are combined: ema (an exponential moving average, see "
        "--ema-alpha), majority (a vote of the top labels of the last --majority-k windows) or none (default ema)",
    )
    m.add_argument(
        "--no-adapt",
        action="store_true",
        help="a bundle with speaker normalisation keeps its training prior instead of learning the speaker "
        "from the speech it hears (default: adapt)",
    )
    m.add_argument(
        "--learn",
        choices=LEARN_MODES,
        default=LEARN_DEFAULT,
        help="what a bundle with speaker normalisation learns the speaker from: utterances (each run of speech "
        "between pauses, as one clip, when it ends) or windows (every window with speech); default "
        f"{LEARN_DEFAULT} (docs/live.md)",
    )
    m.add_argument(
        "--new-speaker-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="take the next speech after this many seconds without any as a new speaker: the speaker statistics go "
        "back to where the run started (the training prior, or --enroll / --speaker-file), as at a booth where "
        "visitors take turns; 5..3600 s (default: one speaker all run)",
    )
    add_enroll_arg(m, "--no-adapt")
    add_speaker_file_arg(m, "--no-adapt")
    m.add_argument(
        "--ema-alpha",
        type=float,
        default=0.5,
        metavar="ALPHA",
        help="weight of the newest window (default 0.5)",
    )
    m.add_argument(
        "--majority-k", type=int, default=5, metavar="K", help="windows in the majority vote (default 5)"
    )
    m.add_argument(
        "--vad-db",
        type=float,
        default=-45.0,
        metavar="DBFS",
        help="silence below this RMS level, dBFS (default -45)",
    )
    m.add_argument(
        "--vad-voicing",
        type=float,
        default=VOICING_DEFAULT,
        metavar="SHARE",
        help="share of each half second's frames that must be voiced for speech, so a fan or steady noise louder "
        f"than --vad-db is silence (default {VOICING_DEFAULT:g}; 0: the level and its noise floor decide, as before; "
        "docs/live.md)",
    )
    m.add_argument(
        "--vad-steady",
        type=float,
        default=STEADY_DEFAULT,
        metavar="SECONDS",
        help="seconds of a voiced sound whose pitch and level do not move (a hum, a drone) after which the voice "
        f"gate shuts on it (default {STEADY_DEFAULT:g}; 0: off; docs/live.md)",
    )
    m.add_argument(
        "--cut-pauses",
        choices=("on", "off"),
        default="on" if CUT_PAUSES_DEFAULT else "off",
        help="cut each window with speech to its speech plus the pause the bundle's training clips held (a bundle "
        f"with a pauses block; default {'on' if CUT_PAUSES_DEFAULT else 'off'}; docs/live.md)",
    )
    m.add_argument(
        "--face-every",
        type=in_range(1),
        default=5,
        metavar="K",
        help="full face detection every k-th crop (default 5)",
    )
    m.add_argument(
        "--seconds",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this much stream time (the first update comes when the first --window is full)",
    )
    o = p.add_argument_group("outputs")
    o.add_argument("--no-console", action="store_true", help="no live table on the terminal")
    o.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="JSON lines to this file (replaced; see --json-append), or - for stdout",
    )
    o.add_argument(
        "--json-append",
        action="store_true",
        help="append to the --json file instead of replacing it (a service that restarts keeps every session's "
        "results; a line a crash cut short is ended first)",
    )
    o.add_argument("--overlay", action="store_true", help="an OpenCV window with face box, label and bars")
    o.add_argument(
        "--web",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="PORT",
        help="serve the live page on this port (optional; 0 or none: any free port)",
    )
    o.add_argument(
        "--web-host", default="127.0.0.1", metavar="HOST", help="interface of the page (default 127.0.0.1)"
    )
    o.add_argument(
        "--web-max-clients",
        type=int,
        default=16,
        metavar="N",
        help="open page streams at most; one more gets HTTP 503 and retries (default 16)",
    )
    o.add_argument(
        "--web-allow-host",
        type=_allowed_hosts,
        action="extend",
        default=None,
        metavar="NAME[,NAME...]",
        help="a host name the page also answers to (a reverse proxy, a DNS name; comma-separated, repeatable): a "
        "request naming a host other than this device's names and addresses gets HTTP 403, against DNS "
        "rebinding; '*' answers any host, which lets any web page the viewer visits read the results",
    )


def _allowed_hosts(text: str) -> list[str]:
    """`--web-allow-host a,b` -> its names (argparse's error naming the option for an empty or bad one)."""
    from edge_ser.live.outputs.web import host_names

    try:
        return list(host_names(text))
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="the live demo: microphone (+ camera) -> bundle -> console, JSON lines, overlay, web page",
        description="Live emotion recognition from a microphone (and a camera for audio-visual bundles), or "
        "the same pipeline on a WAV file (and a video file or image folder). Ctrl-C or SIGTERM stops "
        "cleanly.",
    )
    add_run_args(p)
    p.set_defaults(func=cmd_run)
    # every option's default, to tell which ones the user gave (`unused_options`)
    p.set_defaults(run_defaults={a.dest: a.default for a in p._actions if a.option_strings})  # noqa: SLF001


def video_sound(args: argparse.Namespace, hears: bool) -> str | None:
    """The --video-file itself as the audio source, when it is a video with a sound track and neither --audio-file
    nor --mic was given to a bundle that listens (it went to the default microphone, which a machine playing a
    recording often does not have); None otherwise."""
    video = getattr(args, "video_file", None)
    if not hears or video is None or args.audio_file is not None or args.mic is not None:
        return None
    from edge_ser.vision.video import VIDEO_EXTENSIONS

    if Path(video).suffix.lower() not in VIDEO_EXTENSIONS or not Path(video).is_file():
        return None
    from edge_ser.audio.stream import has_sound_track
    from edge_ser.errors import MissingDependencyError

    try:
        return str(video) if has_sound_track(video) else None
    except MissingDependencyError:  # no ffmpeg to read the track: the microphone, as before
        return None


def _plays(video: str | Path) -> bool:
    """Whether --video-file looks like something to play (a folder of images, a non-empty file with a video
    extension): the note that its sound track is missing is for those, not before the error an empty file, a
    FIFO or an image gets."""
    from edge_ser.vision.video import VIDEO_EXTENSIONS

    p = Path(video)
    if p.is_dir():
        return True
    return p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file() and p.stat().st_size > 0


def unused_options(args: argparse.Namespace, kind: Any, learns_speaker: bool = True) -> list[str]:
    """Options given that this run does not use (they were accepted without a word): microphone settings beside an
    audio file, a camera beside a video file, the live page's settings without --web, --json-append without a
    --json file, a smoothing's setting beside another --smoothing, --image-fps without images, audio settings for a
    bundle that takes faces only, and the speaker-learning settings for a bundle without speaker normalisation
    (`learns_speaker` False; `predict` and `eval` name their --adapt / --no-adapt there too)."""
    out = []
    if getattr(args, "audio_file", None) is not None:
        mic = [
            o
            for o, v in (("--mic", args.mic), ("--mic-rate", getattr(args, "mic_rate", None)))
            if v is not None
        ]
        mic += ["--channels"] if getattr(args, "channels", 1) != 1 else []
        if mic:
            out.append(f"{', '.join(mic)} not used: the audio comes from --audio-file")
    if getattr(args, "video_file", None) is not None and getattr(args, "camera", None) is not None:
        out.append("--camera not used: the faces come from --video-file")
    if (
        getattr(args, "fast", False)
        and getattr(args, "audio_file", None) is None
        and getattr(args, "video_file", None) is None
        and kind.hears
    ):
        out.append(
            "--fast not used: a microphone runs in real time (--fast plays --audio-file as fast as it can)"
        )
    out += _unused_outputs(args)
    if getattr(args, "fallback", None) is not None and not kind.faces:
        # a note, not an error: a service's config.env may name a fallback for an audio-visual bundle and later
        # be deployed an audio-only one, which must still start
        out.append("--fallback not used: this bundle takes no faces, so it never lacks one")
    if not kind.faces:  # the camera is never opened: --camera 1 for ser_emodb was accepted without a word
        camera = [
            o
            for o, d in (
                ("--camera", "camera"),
                ("--width", "width"),
                ("--height", "height"),
                ("--fps", "fps"),
                ("--face-every", "face_every"),
                ("--image-fps", "image_fps"),
            )
            if _given(args, d)
        ]
        if camera:
            out.append(f"{', '.join(camera)} not used: this bundle takes no faces")
    elif getattr(args, "video_file", None) is None and _given(args, "image_fps"):
        out.append("--image-fps not used without --video-file (a folder of images)")
    # no microphone is opened: its settings and the voice gate's were accepted without a word
    if not kind.hears:
        audio = [
            o
            for o, d in (
                ("--mic", "mic"),
                ("--mic-rate", "mic_rate"),
                ("--channels", "channels"),
                ("--vad-db", "vad_db"),
                ("--vad-voicing", "vad_voicing"),
                ("--vad-steady", "vad_steady"),
                ("--learn", "learn"),
                ("--new-speaker-after", "new_speaker_after"),
            )
            if _given(args, d)
        ]
        audio += ["--no-adapt"] if getattr(args, "no_adapt", False) else []
        if audio:
            out.append(f"{', '.join(audio)} not used: this bundle takes faces only")
    elif not learns_speaker:
        speaker = ["--learn"] if _given(args, "learn") else []
        speaker += ["--no-adapt"] if getattr(args, "no_adapt", False) else []
        if speaker:
            out.append(
                f"{', '.join(speaker)} not used: this bundle has no speaker normalisation, so it learns no speaker"
            )
    return out


def _unused_outputs(args: argparse.Namespace) -> list[str]:
    """`unused_options`' part for the outputs and the smoothing: the live page's settings without --web,
    --json-append without a --json file, a smoothing's setting beside another --smoothing."""
    out = []
    if getattr(args, "web", None) is None:
        web = [
            o
            for o, d in (
                ("--web-host", "web_host"),
                ("--web-max-clients", "web_max_clients"),
                ("--web-allow-host", "web_allow_host"),
            )
            if _given(args, d)
        ]
        if web:
            out.append(f"{', '.join(web)} not used without --web")
    smoothing = getattr(args, "smoothing", "ema")
    for option, dest, mode in (
        ("--ema-alpha", "ema_alpha", "ema"),
        ("--majority-k", "majority_k", "majority"),
    ):
        if smoothing != mode and _given(args, dest):
            out.append(
                f"{option} not used with --smoothing {smoothing} (it applies to --smoothing {mode} only)"
            )
    if getattr(args, "json_append", False) and getattr(args, "json", None) in (None, "-"):
        # it was accepted without a word, so a service's results went nowhere it could keep
        out.append(
            "--json-append not used without --json FILE"
            if getattr(args, "json", None) is None
            else "--json-append not used with --json - (stdout is written, not replaced)"
        )
    return out


def _given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the option `dest` was given a value other than its default (`run_defaults`, set by `register`)."""
    defaults = getattr(args, "run_defaults", {})
    return dest in defaults and getattr(args, dest, None) != defaults[dest]


def capture_settings(args: argparse.Namespace, audio_file: str | None = None) -> CaptureSettings:
    """The sources the command's arguments name (`audio_file`: instead of --audio-file, `video_sound`'s)."""
    return CaptureSettings(
        mic=args.mic,
        channels=args.channels,
        mic_rate=getattr(args, "mic_rate", None),
        audio_file=audio_file or args.audio_file,
        camera=args.camera,
        width=args.width,
        height=args.height,
        fps=args.fps,
        video_file=args.video_file,
        image_fps=args.image_fps,
        realtime=not args.fast,
        face_every=args.face_every,
    )


def build(args: argparse.Namespace, *, stop=None, outputs=(), keep: int = 10_000, command: str = "run"):
    """The Recognizer and the live runner the command's arguments describe: (recognizer, runner). `command`: the
    command its notes name (`edge-ser bench --live` builds the same runner)."""
    from edge_ser.live.pipeline import PipelineConfig
    from edge_ser.recognizer import Recognizer

    if args.seconds is not None and not args.seconds > 0:  # before the bundle loads
        raise ConfigError(f"--seconds {args.seconds}: give the stream time to stop after, > 0 s")
    rec = Recognizer(
        args.bundle,
        args.engine,
        threads=args.threads,
        adapt=not args.no_adapt,
        delegate=getattr(args, "delegate", None),
        providers=getattr(args, "providers", None),
    )
    sound = video_sound(args, rec.kind.hears)
    if (
        sound is None
        and rec.kind.hears
        and rec.kind.faces
        and getattr(args, "video_file", None) is not None
        and args.audio_file is None
        and args.mic is None
        and _plays(args.video_file)
    ):  # it went to the microphone without a word, and a machine playing a recording often has none
        print(
            f"edge-ser {command}: note: {args.video_file} has no sound track (or it cannot be read): listening to the "
            "default microphone instead (--mic DEVICE to choose one, --audio-file FILE for a recording)",
            file=sys.stderr,
        )
    if getattr(args, "video_file", None) and not rec.kind.faces and sound is None:
        print(
            f"edge-ser {command}: note: --video-file is not used: {rec.bundle.name} takes no faces",
            file=sys.stderr,
        )
    for unused in unused_options(args, rec.kind, learns_speaker=rec.speaker_clips is not None):
        print(f"edge-ser {command}: note: {unused}", file=sys.stderr)
    if (
        getattr(args, "fast", False)
        and rec.kind.faces
        and rec.kind.hears  # a face-only bundle refuses the audio file (capture_settings' error, alone)
        and getattr(args, "audio_file", None)
        is not None  # a microphone: `unused_options` says --fast is unused
        and not getattr(args, "video_file", None)
    ):
        # the faces come from a live camera, which delivers in real time while the file runs ahead of it
        print(
            f"edge-ser {command}: note: --fast runs the audio file faster than real time, which a live camera cannot "
            "follow: few or no frames will arrive (give the faces as --video-file, or leave --fast out)",
            file=sys.stderr,
        )
    loaded = load_speaker_file(rec, getattr(args, "speaker_file", None))
    if loaded:
        print(f"edge-ser {command}: {loaded}", file=sys.stderr)
    if getattr(args, "enroll", None):
        line = enroll_files(rec, args.enroll, stop, vad_db=args.vad_db, voicing=args.vad_voicing)
        print(f"edge-ser {command}: {line}", file=sys.stderr)
    config = PipelineConfig(
        window=args.window,
        hop=args.hop,
        smoothing=args.smoothing,
        ema_alpha=args.ema_alpha,
        majority_k=args.majority_k,
        vad_db=args.vad_db,
        vad_voicing=args.vad_voicing,
        vad_steady=getattr(args, "vad_steady", STEADY_DEFAULT),
        cut_pauses=getattr(args, "cut_pauses", "on" if CUT_PAUSES_DEFAULT else "off") == "on",
        learn=getattr(args, "learn", LEARN_DEFAULT),
        new_speaker_after=getattr(args, "new_speaker_after", None),
    )
    if sound is not None:
        print(
            f"edge-ser {command}: note: audio from the video's own sound track ({sound}); give --mic to listen to a "
            "microphone instead",
            file=sys.stderr,
        )
    runner = rec.runner(
        capture_settings(args, sound),
        config,
        # a bundle that takes no faces never falls back: the note above says so, and the fallback is not loaded
        # (its labels or rate need not match; a config.env naming one for an AV bundle was refused on them)
        fallback=args.fallback if rec.kind.faces else None,
        outputs=outputs,
        stop=stop,
        seconds=args.seconds,
        keep=keep,
    )
    if config.cut_pauses and runner.pipeline.keep_pause is None:
        why = "takes faces" if rec.kind.faces else "has no pauses block (`edge-ser info` shows it)"
        print(
            f"edge-ser {command}: note: --cut-pauses does nothing here: {rec.bundle.source} {why}",
            file=sys.stderr,
        )
    return rec, runner


def too_short(args: argparse.Namespace, stats: Any) -> str | None:
    """Why a file run gave no decision at all, when the file was shorter than one window (else None): the audio
    file's, or the video's a face-only bundle ran on (it ended with 0 updates and exit 0, without a word)."""
    audio = getattr(args, "audio_file", None)
    video = None if audio is not None else getattr(args, "video_file", None)  # a face-only run's clock
    # a video's last frame starts its last frame period before its end, so a window as long as the video ends
    # past the last frame: no update either (0.8 s of images and --window 0.8 ended with 0 updates, silently)
    step = 0.1 if video is not None else 0.0
    why = run_too_short(audio or video, args.window + step, stats, "audio" if audio else "video")
    if why is None:
        return None
    why = why.replace(f"one {args.window + step:g} s window", f"one {args.window:g} s window")
    other = (
        "play the images slower (--image-fps)"
        if video is not None and Path(video).is_dir()
        else "classify the clip whole with `edge-ser predict`"
    )
    window = round(math.floor(stats.stream_seconds * 10) / 10 - step, 1)
    if window < MIN_WINDOW:  # no live window fits: --window has a floor
        return f"{why}; it is shorter than the shortest live window ({MIN_WINDOW:g} s): {other}"
    # updates come at whole hops: the first at the first multiple of the hop that fills a window, which must fall
    # within the file (and the hop may not exceed the window)
    first = math.ceil(window / args.hop - 1e-9) * args.hop
    hop = f" --hop {window:g}" if args.hop > window or first > window + 1e-9 else ""
    return f"{why}; give --window {window:g}{hop} or less, or {other}"


def no_frames(rec: Any, runner: Any, stats: Any) -> str | None:
    """Why a bundle that takes faces saw none because its frame source never delivered one (else None): an
    audio-visual bundle then ran on audio alone, a face-only one made no decision."""
    frames = runner.frames
    if not rec.kind.faces or frames is None or runner.camera_seen or not stats.updates:
        return None
    source = getattr(getattr(frames, "config", None), "source", None)
    name = f"camera {source!r}" if source is not None else "the video source"
    why = getattr(frames, "last_reason", None)
    outcome = {
        "audio-only": "the run was audio-only",
        "no face": "every update said no face (no label was given)",
    }.get(
        runner.pipeline.without_faces,
        "every answer was the fused model on black frames (give --fallback an audio-only bundle to answer from the "
        "audio alone)",
    )
    # with --fast the stream ran ahead of the camera's clock: say how long the camera really had
    fast = getattr(runner.audio, "realtime", True) is False
    wall = f" of stream ({stats.wall_seconds:.1f} s of wall time with --fast)" if fast else ""
    return (
        f"no frame came from {name} in {stats.stream_seconds:.1f} s{wall}"
        + (f" ({why})" if why else "")
        + f", so "
        f"{outcome}; check --camera (a USB camera is usually 0 or /dev/video0; `ls /dev/video*` lists them)"
    )


def output_settings(args: argparse.Namespace):
    """The outputs the run options ask for (console unless --no-console, --json, --overlay, --web): `edge-ser run`'s
    and `edge-ser bench --live`'s (whose console is always off)."""
    from edge_ser.live.outputs import OutputSettings

    return OutputSettings(
        console=not args.no_console,
        jsonl=args.json,
        jsonl_append=getattr(args, "json_append", False),
        overlay=args.overlay,
        web=args.web is not None,
        web_host=args.web_host,
        web_port=args.web or 0,
        web_max_clients=args.web_max_clients,
        web_allow_hosts=tuple(getattr(args, "web_allow_host", None) or ()),
    )


def closing_lines(
    args: argparse.Namespace, rec: Any, runner: Any, s: Any
) -> tuple[list[tuple[str, str]], bool]:
    """The end-of-run lines as (level prefix, text): why a file gave no decision, the gate's and utterances'
    notes, audio that ended before the video, a frame source that delivered nothing, the summary; and whether the
    run failed."""
    out: list[tuple[str, str]] = []
    short = too_short(args, s)
    if short:
        out.append(("error: ", short))
    if getattr(s, "clipped_updates", 0):
        out.append(
            (
                "warning: ",
                f"{s.clipped_updates} of {counted(s.updates, 'update')} {'was' if s.clipped_updates == 1 else 'were'} clipped (more than 1 % of a hop's samples at "
                "full scale): distorted audio the model never trained on; turn the input's gain down (the microphone's, or "
                "the recording's)",
            )
        )
    if getattr(s, "mic_losses", 0):
        out.append(
            (
                "warning: ",
                f"the microphone was lost {s.mic_losses} time(s), {s.mic_lost_seconds:.1f} s in all"
                + ("; it was still lost when the run ended" if s.mic_lost_at_end else ""),
            )
        )
    quiet = (
        gate_note(s, runner.pipeline.gate, getattr(runner.audio, "path", None)) if rec.kind.hears else None
    )
    if quiet:
        out.append(("note: ", quiet))
    brief = utterance_note(s)  # None for a model that does not hear: it has no utterances
    if brief:
        out.append(("note: ", brief))
    # a face-only run's clock is the video itself: its audio never ends first
    if rec.kind.hears and rec.kind.faces and runner.frames is not None:
        early = audio_ended_note(s, runner.frames, runner.pipeline.config.hop)
        if early:
            out.append(("note: ", early))
    blind = no_frames(rec, runner, s)
    if blind:
        out.append(("warning: " if rec.kind.hears else "error: ", blind))
        short = short or (None if rec.kind.hears else blind)
    out.append(
        (
            "",
            f"{counted(s.updates, 'update')} over {s.stream_seconds:.1f} s of {'audio' if rec.kind.hears else 'video'} "
            f"in {s.wall_seconds:.1f} s ({s.cpu_seconds:.1f} s CPU)"
            + (f"; faces found in {s.faces_found} of {s.faces_cropped} crops" if rec.kind.faces else ""),
        )
    )
    return out, bool(short)


def cmd_run(args: argparse.Namespace) -> int:
    from edge_ser.live.outputs import make_outputs
    from edge_ser.live.signals import StopFlag

    warn_oversubscribed(args.threads, "run", "each update waits on the others and may fall behind real time")
    with StopFlag() as stop, make_outputs(output_settings(args)) as outputs:
        rec, runner = build(args, stop=stop, outputs=[outputs])
        bundle = rec.bundle
        if outputs.overlay is not None:
            runner.frame_hook = outputs.overlay.update_frame
        err = sys.stderr
        runner.audio.start()  # opens the microphone now, so the banner can say at which rate
        try:
            print(f"edge-ser run: {printable(bundle.describe())}", file=err)
            print(
                f"  engine {runner.pipeline.engine.name}; window {args.window} s, hop {args.hop} s", file=err
            )
            note = getattr(runner.audio, "capture_note", None)
            if note:
                print(f"  audio: {printable(note)}", file=err)
            if outputs.web is not None:
                print(f"  live page: {outputs.web.url}", file=err)
                # on every interface, 127.0.0.1 is no address for the phone in the room
                if outputs.web.elsewhere:
                    print(f"  from other machines: {outputs.web.elsewhere}", file=err)
        except BaseException:
            runner.audio.stop()
            raise
        try:
            stats = runner.run()
        except BaseException as e:
            # an error (a full disk under --json, a model that fails) or a forced stop: the page is told the run
            # ended, and why; its stream used to just close, and the page said "reconnecting..." for ever
            if outputs.web is not None:
                why = (
                    "interrupted"
                    if isinstance(e, KeyboardInterrupt)
                    else f"error: {str(e) or type(e).__name__}"
                )
                outputs.web.end([why])
            raise
        lines, failed = closing_lines(args, rec, runner, stats)
        if outputs.web is not None:  # the page says the run has ended, with these notes, before it closes
            outputs.web.end([text for _, text in lines])
    for level, text in lines:
        print(f"edge-ser run: {level}{text}", file=sys.stderr)
    # also after Ctrl-C: run() returned; run has --no-adapt, not --adapt off
    saved = save_speaker_file(rec, getattr(args, "speaker_file", None), "--no-adapt")
    if saved:
        print(f"edge-ser run: {saved}", file=sys.stderr)
    return 1 if failed else 0
