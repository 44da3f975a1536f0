"""The live voice gate's level: how much speech it hears and how much not-speech it lets through, per level.

    python benchmarks/voice_gate.py [--levels -45 -50 -55 -60]

The gate as the live pipeline runs it (`edge_ser.live.pipeline.VadGate` on the `level_db` of consecutive
half-second hops, the default hop, with its 10 dB margin over the floor it tracks), each speaker's clips played one
after another as one session, in sorted order. Speech: the share of clips on which the gate opens on at least one
hop (a hop belongs to the clip holding its middle; a clip it never opens on reads `silence` from start to end),
on RAVDESS's 720 clips (16 kHz, recorded quietly) and EMODB's 535. Not speech: the share of hops it opens on
(1) the first 0.25 s of every RAVDESS clip, the studio's room tone before the actor speaks, played per actor as
one stream, and (2) a minute of steady pink noise (seeded) at each of -70, -60, -50 and -40 dBFS RMS, a fan or a
ventilated room. docs/live.md ("The gate's level") gives the rule that chose the default from this table.
Writes benchmarks/results/voice_gate.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import doc_body, require_datasets, run_main, write_results  # noqa: E402

SR = 16000
HOP_SECONDS = 0.5
ROOM_TONE_SECONDS = 0.25
NOISE_DBFS = (-70.0, -60.0, -50.0, -40.0)
NOISE_SECONDS = 60.0
SPEECH_MIN = 0.99
"""The rule (docs/live.md): the gate must open on at least this share of RAVDESS's clips ..."""
NOT_SPEECH_MAX = 0.01
"""... and on at most this share of each not-speech set's hops."""


def hop_levels(y, hop: int) -> list[float]:
    """The level (dBFS) of each whole hop of `y`, as the live pipeline's gate sees them one after another."""
    from edge_ser.audio.level import level_db

    return [level_db(y[i : i + hop]) for i in range(0, y.size - hop + 1, hop)]


def gate_opens(levels: list[float], vad_db: float) -> list[bool]:
    """The live gate's decision on each hop of one session (a fresh gate, as at the start of `edge-ser run`)."""
    from edge_ser.live.pipeline import PipelineConfig, VadGate

    gate = VadGate(vad_db, PipelineConfig().vad_margin_db)
    return [gate(db) for db in levels]


def sessions(name: str) -> dict[str, list]:
    """Each speaker's clips at 16 kHz (mono, as the live pipeline hears them), in sorted file order."""
    from converters.pipeline import load_records
    from edge_ser.audio import load

    _, records = load_records(name, None)
    out: dict[str, list] = {}
    for r in sorted(records, key=lambda r: str(r.source)):
        out.setdefault(r.speaker, []).append(load(r.source, sr=SR)[0])
    return out


def clips_heard(per_speaker: dict[str, list], vad_db: float) -> tuple[int, int]:
    """(clips on which the gate opened at least once, clips), each speaker's clips as one session."""
    import numpy as np

    hop = int(HOP_SECONDS * SR)
    heard = total = 0
    for clips in per_speaker.values():
        stream = np.concatenate(clips)
        opens = gate_opens(hop_levels(stream, hop), vad_db)
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


def hops_open(streams: list, vad_db: float) -> tuple[int, int]:
    """(hops the gate opened on, hops), each stream a fresh session."""
    hop = int(HOP_SECONDS * SR)
    opened = total = 0
    for y in streams:
        opens = gate_opens(hop_levels(y, hop), vad_db)
        opened += sum(opens)
        total += len(opens)
    return opened, total


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--levels", type=float, nargs="+", default=[-45.0, -50.0, -55.0, -60.0], help="gates, dBFS"
    )
    args = ap.parse_args()
    if any(not -120 <= v <= 0 for v in args.levels):
        ap.error(f"--levels {args.levels}: each must be in -120..0 dBFS")
    require_datasets("ravdess", "emodb")
    ravdess, emodb = sessions("ravdess"), sessions("emodb")
    tone = room_tone(ravdess)
    noise = {db: pink_noise(db, NOISE_SECONDS, seed=i) for i, db in enumerate(NOISE_DBFS)}
    rows = []
    for vad_db in args.levels:
        rh, rn = clips_heard(ravdess, vad_db)
        eh, en = clips_heard(emodb, vad_db)
        to, tn = hops_open(tone, vad_db)
        row = {
            "vad_db": vad_db,
            "ravdess_heard": rh / rn,
            "ravdess_clips": rn,
            "emodb_heard": eh / en,
            "emodb_clips": en,
            "room_tone_open": to / tn,
            "room_tone_hops": tn,
            "pink_noise_open": {f"{db:g}": _share(hops_open([y], vad_db)) for db, y in noise.items()},
        }
        rows.append(row)
        print(f"{vad_db:g} dBFS: RAVDESS heard {rh}/{rn}, EMODB {eh}/{en}, room tone open {to}/{tn}")
    chosen = choose(rows)
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    lines = [
        "# The live voice gate's level",
        "",
        doc_body(__doc__),
        "",
        "| gate, dBFS | RAVDESS clips heard | EMODB clips heard | room tone: hops open | "
        + " | ".join(f"pink noise {db:g} dBFS: hops open" for db in NOISE_DBFS)
        + " |",
        "|---" * (4 + len(NOISE_DBFS)) + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['vad_db']:g} | {pct(r['ravdess_heard'])} | {pct(r['emodb_heard'])} | {pct(r['room_tone_open'])} | "
            + " | ".join(pct(v) for v in r["pink_noise_open"].values())
            + " |"
        )
    lines += [
        "",
        f"Room tone: {rows[0]['room_tone_hops']} hops; pink noise: {int(NOISE_SECONDS / HOP_SECONDS)} hops per level.",
        "",
        "The rule's choice: "
        + (f"**{chosen:g} dBFS**" if chosen is not None else "no level passes: -45 dBFS stays")
        + f" (RAVDESS heard >= {pct(SPEECH_MIN)}, each not-speech set <= {pct(NOT_SPEECH_MAX)}, EMODB no lower than at -45).",
    ]
    write_results("voice_gate", {"rows": rows, "chosen": chosen}, "\n".join(lines))
    print("\n".join(lines[-1:]))
    return 0


if __name__ == "__main__":
    run_main(main)
