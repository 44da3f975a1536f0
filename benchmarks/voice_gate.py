"""The live voice gate: how much speech it hears and how much not-speech it lets through, per level and floor.

    python benchmarks/voice_gate.py [--levels -45 -50 -55 -60]

The gate as the live pipeline runs it (`edge_ser.live.pipeline.VadGate` on the `level_db` of consecutive
half-second hops, the default hop, with its 10 dB margin over the floor it tracks), each speaker's clips played one
after another as one session, in sorted order. Speech: the share of clips on which the gate opens on at least one
hop (a hop belongs to the clip holding its middle; a clip it never opens on reads `silence` from start to end),
on RAVDESS's 720 clips (16 kHz, recorded quietly) and EMODB's 535. Not speech: the share of hops it opens on
(1) the first 0.25 s of every RAVDESS clip, the studio's room tone before the actor speaks, played per actor as
one stream, and (2) a minute of steady pink noise (seeded) at each of -70, -60, -50 and -40 dBFS RMS, a fan or a
ventilated room. Speech in noise: RAVDESS's sessions with steady pink noise at -50 dBFS under them. The first table
varies the gate's level, the second the way its floor follows sound (`VadGate(steady_hops=N, steady_db=D)`: N hops
within D dB of each other raise the floor to their minimum), the third where the floor starts, the fourth a gate
that also tests each hop's voicing (`VadGate(voicing=v, floor=...)`), with labelled speech and noise-only hops in
loud noise and a hum, the fifth a hangover for it, the sixth a test that shuts the gate on a steady voiced sound
(`VadGate(steady_seconds=...)`), with speech over a hum. docs/live.md ("The gate's level", "The floor of steady sound", "A gate that hears voicing")
gives the rules, fixed before the runs, that chose the defaults from these tables.
Writes benchmarks/results/voice_gate.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import doc_body, require_datasets, run_main, write_results  # noqa: E402
from edge_ser.audio.level import SILENCE_DB  # noqa: E402

SR = 16000
HOP_SECONDS = 0.5
ROOM_TONE_SECONDS = 0.25
NOISE_DBFS = (-70.0, -60.0, -50.0, -40.0)
NOISE_SECONDS = 60.0
SPEECH_MIN = 0.99
"""The rule (docs/live.md): the gate must open on at least this share of RAVDESS's clips ..."""
NOT_SPEECH_MAX = 0.01
"""... and on at most this share of each not-speech set's hops."""
NOISY_DBFS = -50.0
"""The steady pink noise under RAVDESS's clips for the speech-in-noise set."""
LABELLED_DBFS = -40.0
"""The steady pink noise under RAVDESS's clips for the labelled speech-in-noise hops (docs/live.md, "A gate that
hears voicing")."""
SPEECH_HOP_DB, NOISE_ONLY_HOP_DB = -45.0, -60.0
"""A hop of the labelled set is speech where the clean recording's hop reaches the first level, noise only where
it is under the second."""
HUM_HZ = 100.0
VOICING_CANDIDATES = ((0.1, True), (0.2, True), (0.1, False), (0.2, False))
"""The voicing rule's candidates (docs/live.md): (voiced share of a hop, with the floor test or not)."""
HANGOVER_CANDIDATES = (1, 2)
"""The hangover rule's candidates (docs/live.md, "What the voicing gate costs in a quiet room"): hops after a voiced
one that open the shipped voicing gate (0.1, no floor) without being voiced."""
STEADY_CANDIDATE = 2.0
"""The steady-sound rule's candidate (docs/live.md, "A steady voiced sound"): seconds of voicing tests whose periods
and energies hardly moved after which the shipped gate shuts."""
HUM_DBFS = -40.0
"""The hum alone, and under RAVDESS's sessions for the labelled speech-over-hum hops."""
HANGOVER_NOISE_MAX = 0.10
"""The hangover rule: at most this share of the labelled noise-only hops may open."""
STEADY_CANDIDATES = ((4, 3.0), (6, 3.0), (4, 1.0), (6, 1.0))
"""The floor rules' candidates (docs/live.md): (N, D), N hops within D dB of each other make a steady sound. The
first rule chose among the 3 dB pair, the second among the 1 dB pair."""


def hop_levels(y, hop: int) -> list[float]:
    """The level (dBFS) of each whole hop of `y` without its DC offset, as the live pipeline's gate sees them."""
    from edge_ser.audio.level import level_db

    return [level_db(h - h.mean()) for h in hops_of(y, hop)]


def hops_of(y, hop: int) -> list:
    """The whole hops of `y`, one after another."""
    return [y[i : i + hop] for i in range(0, y.size - hop + 1, hop)]


def gate_opens(y, vad_db: float, **gate) -> list[bool]:
    """The live gate's decision on each hop of one session `y` (a fresh gate, as at the start of `edge-ser run`;
    the hop's level and samples without their DC offset, as `LivePipeline.step` gives them); `gate`: `VadGate`'s
    options (steady_hops, steady_db, start_at_gate, voicing, floor)."""
    from edge_ser.audio.level import level_db
    from edge_ser.live.pipeline import PipelineConfig, VadGate

    g = VadGate(vad_db, PipelineConfig().vad_margin_db, **gate)
    out = []
    for h in hops_of(y, int(HOP_SECONDS * SR)):
        h = h - h.mean(dtype="float64").astype(h.dtype)
        out.append(g(level_db(h), h, SR))
    return out


def sessions(name: str) -> dict[str, list]:
    """Each speaker's clips at 16 kHz (mono, as the live pipeline hears them), in sorted file order."""
    from converters.pipeline import load_records
    from edge_ser.audio import load

    _, records = load_records(name, None)
    out: dict[str, list] = {}
    for r in sorted(records, key=lambda r: str(r.source)):
        out.setdefault(r.speaker, []).append(load(r.source, sr=SR)[0])
    return out


def clips_heard(per_speaker: dict[str, list], vad_db: float, **floor) -> tuple[int, int]:
    """(clips on which the gate opened at least once, clips), each speaker's clips as one session."""
    import numpy as np

    hop = int(HOP_SECONDS * SR)
    heard = total = 0
    for clips in per_speaker.values():
        stream = np.concatenate(clips)
        opens = gate_opens(stream, vad_db, **floor)
        ends = np.cumsum([c.size for c in clips])
        owner = np.searchsorted(ends, np.arange(len(opens)) * hop + hop // 2, side="right")
        hit = np.zeros(len(clips), bool)
        hit[owner[np.asarray(opens, bool)]] = True
        heard += int(hit.sum())
        total += len(clips)
    return heard, total


def room_tone(per_speaker: dict[str, list]) -> list:
    """Per actor, the first ROOM_TONE_SECONDS of each of its clips, joined into one stream."""
    import numpy as np

    n = int(ROOM_TONE_SECONDS * SR)
    return [np.concatenate([c[:n] for c in clips]) for clips in per_speaker.values()]


def pink_noise(dbfs: float, seconds: float, seed: int = 0):
    """Steady pink (1/f power) noise at `dbfs` RMS."""
    import numpy as np

    n = int(seconds * SR)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    y = np.fft.irfft(spectrum, n)
    return (y * (10 ** (dbfs / 20) / np.sqrt(np.mean(y**2)))).astype(np.float32)


def hops_open(streams: list, vad_db: float, **floor) -> tuple[int, int]:
    """(hops the gate opened on, hops), each stream a fresh session."""
    opened = total = 0
    for y in streams:
        opens = gate_opens(y, vad_db, **floor)
        opened += sum(opens)
        total += len(opens)
    return opened, total


def hum(dbfs: float, seconds: float, f0: float = HUM_HZ):
    """A steady mains-like hum: `f0` and its first harmonics (amplitude 1/k) at `dbfs` RMS; voiced, not speech."""
    import numpy as np

    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (y * (10 ** (dbfs / 20) / np.sqrt(np.mean(y**2)))).astype(np.float32)


def labelled_in_noise(per_speaker: dict[str, list], dbfs: float, under=None) -> list[tuple]:
    """Per speaker, (stream with steady pink noise at `dbfs` under it, speech hops, noise-only hops): a hop is
    speech where the clean recording's hop reaches SPEECH_HOP_DB and noise only where it is under
    NOISE_ONLY_HOP_DB (the recording's pauses); the others are neither. `under`: another steady sound (`hum`) in
    place of the pink noise."""
    import numpy as np

    out = []
    noisy_sets = in_noise(per_speaker, dbfs, under)
    for (_, clean), (_, noisy) in zip(per_speaker.items(), noisy_sets.items(), strict=True):
        levels = np.asarray(hop_levels(np.concatenate(clean), int(HOP_SECONDS * SR)))
        out.append((np.concatenate(noisy), levels >= SPEECH_HOP_DB, levels < NOISE_ONLY_HOP_DB))
    return out


def labelled_open(streams: list[tuple], vad_db: float, **gate) -> tuple[float, float]:
    """(share of the speech hops the gate opens on, share of the noise-only hops), each stream a session."""
    import numpy as np

    speech = noise = n_speech = n_noise = 0
    for y, is_speech, is_noise in streams:
        opens = np.asarray(gate_opens(y, vad_db, **gate), bool)
        speech, n_speech = speech + int(opens[is_speech].sum()), n_speech + int(is_speech.sum())
        noise, n_noise = noise + int(opens[is_noise].sum()), n_noise + int(is_noise.sum())
    return speech / max(n_speech, 1), noise / max(n_noise, 1)


def _share(counts: tuple[int, int]) -> float:
    return counts[0] / counts[1]


def choose(rows: list[dict]) -> float | None:
    """The rule (docs/live.md): the highest level with RAVDESS heard >= SPEECH_MIN, each not-speech share <=
    NOT_SPEECH_MAX and EMODB heard no less than at -45; None when no level passes."""
    base = next((r for r in rows if r["vad_db"] == -45.0), None)
    ok = [
        r
        for r in rows
        if r["ravdess_heard"] >= SPEECH_MIN
        and r["room_tone_open"] <= NOT_SPEECH_MAX
        and all(v <= NOT_SPEECH_MAX for v in r["pink_noise_open"].values())
        and (base is None or r["emodb_heard"] >= base["emodb_heard"])
    ]
    return max((r["vad_db"] for r in ok), default=None)


def in_noise(per_speaker: dict[str, list], dbfs: float, under=None) -> dict[str, list]:
    """Each speaker's clips with one steady pink noise at `dbfs` RMS running under the whole session (`under`:
    another steady sound made as `under(dbfs, seconds)`, a hum)."""
    import numpy as np

    out = {}
    for k, (speaker, clips) in enumerate(per_speaker.items()):
        seconds = sum(c.size for c in clips) / SR + 1
        noise = pink_noise(dbfs, seconds, seed=100 + k) if under is None else under(dbfs, seconds)
        ends = np.cumsum([0] + [c.size for c in clips])
        out[speaker] = [c + noise[a:b] for c, a, b in zip(clips, ends[:-1], ends[1:], strict=True)]
    return out


def measure(sets: dict, vad_db: float, **gate) -> dict:
    """One gate's row: the share of clips heard of each speech set, of hops open of each not-speech set, and of
    the labelled speech and noise-only hops opened in RAVDESS under loud noise (when `sets` has them)."""
    rh, rn = clips_heard(sets["ravdess"], vad_db, **gate)
    eh, en = clips_heard(sets["emodb"], vad_db, **gate)
    nh, nn = clips_heard(sets["ravdess_noisy"], vad_db, **gate)
    to, tn = hops_open(sets["tone"], vad_db, **gate)
    row = {
        "vad_db": vad_db,
        "steady_hops": gate.get("steady_hops", 0),
        "steady_db": gate.get("steady_db", 3.0),
        "start_at_gate": gate.get("start_at_gate", False),
        "voicing": gate.get("voicing", 0.0),
        "floor": gate.get("floor", True),
        "hangover": gate.get("hangover", 0),
        "ravdess_heard": rh / rn,
        "ravdess_clips": rn,
        "emodb_heard": eh / en,
        "emodb_clips": en,
        "ravdess_noisy_heard": nh / nn,
        "room_tone_open": to / tn,
        "room_tone_hops": tn,
        "pink_noise_open": {
            f"{db:g}": _share(hops_open([y], vad_db, **gate)) for db, y in sets["noise"].items()
        },
    }
    if "labelled" in sets:
        row["labelled_speech_open"], row["labelled_noise_open"] = labelled_open(
            sets["labelled"], vad_db, **gate
        )
        row["hum_open"] = _share(hops_open([sets["hum"]], vad_db, **gate))
    if "labelled_hum" in sets:
        row["hum_speech_open"], row["hum_only_open"] = labelled_open(sets["labelled_hum"], vad_db, **gate)
        row["steady_seconds"] = gate.get("steady_seconds", 0.0)
        row["steady_newest"] = gate.get("steady_newest", True)
    return row


def voicing_name(r: dict) -> str:
    """A voicing table row's name."""
    if not r["voicing"]:
        return "current (level and floor)"
    how = "added to the floor" if r["floor"] else "instead of the floor"
    hang = r.get("hangover", 0)
    return f"voiced >= {r['voicing']:g} of the hop, {how}" + (f", hangover {hang}" if hang else "")


def choose_tracker(rows: list[dict], steady_db: float) -> int:
    """A floor rule (docs/live.md), among the candidates of range `steady_db`: the smallest steady_hops whose steady pink noise opens <= 5 % of hops at
    every level, whose clips heard fall by <= 0.5 point on each speech set and whose room tone opens no more
    hops than the current tracker (steady_hops 0); 0 when no candidate passes."""
    base = next(r for r in rows if r["steady_hops"] == 0)
    speech = ("ravdess_heard", "emodb_heard", "ravdess_noisy_heard")
    ok = [
        r["steady_hops"]
        for r in rows
        if r["steady_hops"] > 0
        and r["steady_db"] == steady_db
        and all(v <= 0.05 for v in r["pink_noise_open"].values())
        and all(r[k] >= base[k] - 0.005 for k in speech)
        and r["room_tone_open"] <= base["room_tone_open"]
    ]
    return min(ok, default=0)


def choose_voicing(rows: list[dict]) -> dict | None:
    """The voicing rule (docs/live.md): among rows[1:] (against the current gate, rows[0]), those with steady pink
    noise <= 1 % of hops open at every level, room tone no more than the current gate, each speech set's clips
    heard at most 0.5 point below it and <= 1 % of the labelled noise-only hops open; the highest mean
    clips-heard share wins, and within 0.5 point of it the floor kept, then the smaller voiced share. None when
    no candidate passes."""
    base = rows[0]
    speech = ("ravdess_heard", "emodb_heard", "ravdess_noisy_heard")
    ok = [
        r
        for r in rows[1:]
        if all(v <= NOT_SPEECH_MAX for v in r["pink_noise_open"].values())
        and r["room_tone_open"] <= base["room_tone_open"]
        and all(r[k] >= base[k] - 0.005 for k in speech)
        and r["labelled_noise_open"] <= NOT_SPEECH_MAX
    ]
    if not ok:
        return None
    heard = lambda r: sum(r[k] for k in speech) / len(speech)  # noqa: E731
    best = max(heard(r) for r in ok)
    near = [r for r in ok if heard(r) >= best - 0.005]
    return min(near, key=lambda r: (not r["floor"], r["voicing"]))


def hangover_passes(before: dict, plain: dict, r: dict) -> bool:
    """The voice_gate part of the hangover rule (docs/live.md): against the level-and-floor gate (`before`) and the
    voicing gate without a hangover (`plain`): steady pink noise <= 1 % of hops at every level, the room tone no
    more hops than `before`, every speech set's clips heard no fewer than `plain`, <= 10 % of the labelled
    noise-only hops open. (The rule's other part is live_adapt.py's end-of-utterance UAR.)"""
    speech = ("ravdess_heard", "emodb_heard", "ravdess_noisy_heard")
    return (
        all(v <= NOT_SPEECH_MAX for v in r["pink_noise_open"].values())
        and r["room_tone_open"] <= before["room_tone_open"]
        and all(r[k] >= plain[k] for k in speech)
        and r["labelled_noise_open"] <= HANGOVER_NOISE_MAX
    )


def steady_name(r: dict) -> str:
    """A steady-sound table row's name."""
    if not r["steady_seconds"]:
        return "shipped"
    how = "the newest hop against the sound before it" if r["steady_newest"] else "all its frames pooled"
    return f"shipped + steady sound after {r['steady_seconds']:g} s, {how}"


def steady_passes(shipped: dict, r: dict) -> bool:
    """The steady-sound rule's voice_gate parts (docs/live.md, "A steady voiced sound")."""
    speech = ("ravdess_heard", "emodb_heard", "ravdess_noisy_heard", "labelled_speech_open")
    return (
        r["hum_open"] <= 0.10
        and all(r[k] >= shipped[k] - 0.001 for k in speech)
        and r["hum_speech_open"] >= shipped["hum_speech_open"] - 0.01
    )


def start_passes(rows: list[dict]) -> bool:
    """The start rule (docs/live.md): the floor starting at vad_db - margin (rows[1]) against -90 (rows[0]):
    steady pink noise opens <= 10 % of hops at every level, each speech set's clips heard fall by <= 0.5 point,
    the room tone opens no more hops."""
    base, new = rows
    speech = ("ravdess_heard", "emodb_heard", "ravdess_noisy_heard")
    return (
        all(v <= 0.10 for v in new["pink_noise_open"].values())
        and all(new[k] >= base[k] - 0.005 for k in speech)
        and new["room_tone_open"] <= base["room_tone_open"]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--levels", type=float, nargs="+", default=[-45.0, -50.0, -55.0, -60.0], help="gates, dBFS"
    )
    args = ap.parse_args()
    if any(not -120 <= v <= 0 for v in args.levels):
        ap.error(f"--levels {args.levels}: each must be in -120..0 dBFS")
    require_datasets("ravdess", "emodb")
    ravdess = sessions("ravdess")
    sets = {
        "ravdess": ravdess,
        "emodb": sessions("emodb"),
        "ravdess_noisy": in_noise(ravdess, NOISY_DBFS),
        "tone": room_tone(ravdess),
        "noise": {db: pink_noise(db, NOISE_SECONDS, seed=i) for i, db in enumerate(NOISE_DBFS)},
    }
    voiced_sets = {
        **sets,
        "labelled": labelled_in_noise(ravdess, LABELLED_DBFS),
        "hum": hum(-40.0, NOISE_SECONDS),
    }
    levels = [measure(sets, v) for v in tqdm(args.levels, desc="levels", disable=None)]
    candidates = [(0, 3.0), *STEADY_CANDIDATES]
    trackers = [
        measure(sets, SILENCE_DB, steady_hops=n, steady_db=d)
        for n, d in tqdm(candidates, desc="floors", disable=None)
    ]
    starts = [measure(sets, SILENCE_DB, start_at_gate=a) for a in (False, True)]
    start_ok = start_passes(starts)
    voicings = [
        measure(voiced_sets, SILENCE_DB, voicing=v, floor=f)
        for v, f in tqdm([(0.0, True), *VOICING_CANDIDATES], desc="voicing", disable=None)
    ]
    voicing_pick = choose_voicing(voicings)
    plain = next(r for r in voicings if r["voicing"] == 0.1 and not r["floor"])
    hangovers = [
        measure(voiced_sets, SILENCE_DB, voicing=0.1, floor=False, hangover=h)
        for h in tqdm(HANGOVER_CANDIDATES, desc="hangover", disable=None)
    ]
    hang_ok = {r["hangover"]: hangover_passes(voicings[0], plain, r) for r in hangovers}
    hum_sets = {**voiced_sets, "labelled_hum": labelled_in_noise(ravdess, HUM_DBFS, hum)}
    shipped = {"voicing": 0.1, "floor": False, "hangover": 1}
    steadies = [
        measure(hum_sets, SILENCE_DB, **shipped, steady_seconds=v, steady_newest=newest)
        for v, newest in tqdm(
            ((0.0, True), (STEADY_CANDIDATE, False), (STEADY_CANDIDATE, True)),
            desc="steady sound",
            disable=None,
        )
    ]
    steady_ok = {r["steady_newest"]: steady_passes(steadies[0], r) for r in steadies[1:]}
    chosen = choose(levels)
    picks = {db: choose_tracker(trackers, db) for db in dict.fromkeys(d for _, d in STEADY_CANDIDATES)}
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    noise_cols = " | ".join(f"pink noise {db:g} dBFS: hops open" for db in NOISE_DBFS)

    def row(r: dict, first: str) -> str:
        cells = [r["ravdess_heard"], r["emodb_heard"], r["ravdess_noisy_heard"], r["room_tone_open"]]
        return f"| {first} | " + " | ".join(pct(v) for v in [*cells, *r["pink_noise_open"].values()]) + " |"

    head = (
        f"RAVDESS clips heard | EMODB clips heard | RAVDESS in pink noise at {NOISY_DBFS:g} dBFS: clips heard | "
        f"room tone: hops open | {noise_cols} |"
    )
    rule = "|---" * (5 + len(NOISE_DBFS)) + "|"
    lines = [
        "# The live voice gate: its level and its floor",
        "",
        doc_body(__doc__),
        "",
        "## The level (the current floor tracker)",
        "",
        f"| gate, dBFS | {head}",
        rule,
        *(row(r, f"{r['vad_db']:g}") for r in levels),
        "",
        "The level rule's choice: "
        + (f"**{chosen:g} dBFS**" if chosen is not None else "no level passes: -45 dBFS stays")
        + f" (RAVDESS heard >= {pct(SPEECH_MIN)}, room tone and each pink noise <= {pct(NOT_SPEECH_MAX)}, EMODB no "
        "lower than at -45; the RAVDESS-in-noise column came with the floor rule and is not part of this one).",
        "",
        f"## The floor at {SILENCE_DB:g} dBFS: the current tracker and a floor that follows steady sound",
        "",
        f"| floor | {head}",
        rule,
        *(
            row(
                r,
                "current (up 0.5 dB per hop)"
                if not r["steady_hops"]
                else f"steady: {r['steady_hops']} hops within {r['steady_db']:g} dB",
            )
            for r in trackers
        ),
        "",
        *(
            f"The floor rule among the {db:g} dB candidates: "
            + (f"**{n} hops within {db:g} dB**" if n else "no candidate passes: the current tracker stays")
            + " (steady pink noise <= 5 % of hops at every level; each speech set's clips heard at most 0.5 point "
            "below the current tracker's; room tone no more hops open)."
            for db, n in picks.items()
        ),
        "",
        "",
        f"## Where the floor starts, at {SILENCE_DB:g} dBFS",
        "",
        f"| floor starts at | {head}",
        rule,
        row(starts[0], "-90 dBFS (current)"),
        row(starts[1], f"the gate minus the margin ({SILENCE_DB - 10:g} dBFS)"),
        "",
        "The start rule's choice: "
        + ("**the gate minus the margin**" if start_ok else "the current start (-90 dBFS) stays")
        + " (steady pink noise <= 10 % of hops at every level; each speech set's clips heard at most 0.5 point "
        "below; room tone no more hops open).",
        "",
        f"## A gate that hears voicing, at {SILENCE_DB:g} dBFS",
        "",
        "A hop opens only if at least the given share of its 40 ms frames is voiced (YIN's dip below "
        "`edge_ser.features.pitch.VOICED_DIP` at 60-500 Hz), with the floor test or instead of it. Labelled hops: "
        f"RAVDESS's sessions with steady pink noise at {LABELLED_DBFS:g} dBFS under them; speech where the clean hop "
        f"reaches {SPEECH_HOP_DB:g} dBFS, noise only where it is under {NOISE_ONLY_HOP_DB:g}. Hum: a minute of "
        f"{HUM_HZ:g} Hz and 4 harmonics at -40 dBFS (voiced, not speech; reported, not in the rule).",
        "",
        f"| gate | {head} labelled speech hops open | labelled noise-only hops open | hum: hops open |",
        rule + "---|---|---|",
        *(
            row(r, voicing_name(r))
            + f" {pct(r['labelled_speech_open'])} | {pct(r['labelled_noise_open'])} | {pct(r['hum_open'])} |"
            for r in voicings
        ),
        "",
        "The voicing rule's choice: "
        + (
            f"**{voicing_name(voicing_pick)}**"
            if voicing_pick
            else "no candidate passes: the gate stays as it is"
        )
        + " (steady pink noise <= 1 % of hops at every level; room tone no more hops open; each speech set's clips "
        "heard at most 0.5 point below the current gate's; at most 1 % of the labelled noise-only hops open; the "
        "highest mean clips heard, within 0.5 point the floor kept, then the smaller share).",
        "",
        "## A hangover for the voicing gate",
        "",
        "The shipped voicing gate (0.1, no floor), and after a voiced hop up to H hops at the level that open it "
        "without being voiced. The rule's voice_gate part (docs/live.md): steady pink noise <= 1 % of hops at every "
        "level, room tone no more than the level-and-floor gate, each speech set's clips heard no fewer than "
        f"without a hangover, <= {100 * HANGOVER_NOISE_MAX:g} % of the labelled noise-only hops open; its other part "
        "is `live_adapt.py`'s end-of-utterance UAR.",
        "",
        f"| gate | {head} labelled speech hops open | labelled noise-only hops open | hum: hops open | passes this part |",
        rule + "---|---|---|---|",
        *(
            row(r, voicing_name(r))
            + f" {pct(r['labelled_speech_open'])} | {pct(r['labelled_noise_open'])} | {pct(r['hum_open'])} | "
            + ("-" if not r.get("hangover") else ("yes" if hang_ok[r["hangover"]] else "no"))
            + " |"
            for r in [plain, *hangovers]
        ),
        "",
        "## A steady voiced sound",
        "",
        "The shipped gate (voicing 0.1, no floor, hangover 1), and the same gate that shuts when its voicing tests of "
        f"the last {STEADY_CANDIDATE:g} s all passed and their voiced frames' periods spread by less than 3 % and "
        f"their energies by less than 3 dB (`VadGate(steady_seconds=...)`): all the frames pooled (candidate 1), or "
        "the tests before the newest one so, and the newest matching them (candidate 2, `steady_newest`). Over the hum: RAVDESS's sessions with "
        f"the {HUM_DBFS:g} dBFS hum under them, labelled as the pink-noise set (speech hops, and hum-only hops: "
        "reported, not ruled on).",
        "",
        f"| gate | {head} labelled speech hops open | labelled noise-only hops open | hum: hops open | over the hum: "
        "speech hops open | over the hum: hum-only hops open |",
        rule + "---|---|---|---|---|",
        *(
            row(r, steady_name(r))
            + f" {pct(r['labelled_speech_open'])} | {pct(r['labelled_noise_open'])} | {pct(r['hum_open'])} | "
            f"{pct(r['hum_speech_open'])} | {pct(r['hum_only_open'])} |"
            for r in steadies
        ),
        "",
        "The steady-sound rule's voice_gate parts (docs/live.md: the hum alone <= 10 % of hops open; each speech "
        "set's clips heard and the labelled speech hops in pink noise at most 0.1 point below the shipped gate's; "
        "over the hum, speech hops at most 1.0 point below): "
        + "; ".join(
            f"{steady_name(r)}: " + ("**pass**" if steady_ok[r["steady_newest"]] else "**fail**")
            for r in steadies[1:]
        )
        + ". Its other parts are `live_adapt.py`'s UARs and the live bench.",
        "",
        f"Room tone: {levels[0]['room_tone_hops']} hops; pink noise: {int(NOISE_SECONDS / HOP_SECONDS)} hops per "
        "level.",
    ]
    write_results(
        "voice_gate",
        {
            "levels": levels,
            "chosen": chosen,
            "floors": trackers,
            "floor_chosen": {f"{db:g}": n for db, n in picks.items()},
            "starts": starts,
            "start_at_gate": start_ok,
            "voicing": voicings,
            "voicing_chosen": voicing_pick,
            "hangover": hangovers,
            "hangover_passes": {str(k): v for k, v in hang_ok.items()},
            "steady": steadies,
            "steady_passes": {"newest" if k else "pooled": v for k, v in steady_ok.items()},
        },
        "\n".join(lines),
    )
    print("\n".join(lines[6:]))
    return 0


if __name__ == "__main__":
    run_main(main)
