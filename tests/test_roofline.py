"""The roofline report: projected on a firmware profile, measured on the host, from the CLI, with its plot."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import numpy as np
import pytest

from edge_ser.bundle import load_bundle
from edge_ser.engines import tflite
from edge_ser.errors import ConfigError
from edge_ser.flops import count
from edge_ser.profiles import load_profile, ridge_point
from edge_ser.roofline import build_report, device_roof, write_report

ROOT = Path(__file__).resolve().parents[1]
AV = ROOT / "bundles" / "av_cnn"
SER = ROOT / "bundles" / "ser_emodb"
FACE = ROOT / "bundles" / "face_fer"
FUSION = ROOT / "bundles" / "av_fusion"
cv2 = pytest.importorskip("cv2")


def test_projection_on_a_pi4_is_labelled_and_follows_the_roof(tmp_path):
    b = load_bundle(AV)
    r = build_report(b, load_profile("pi4"), engine="onnxruntime", threads=None)  # all cores
    assert not r.measured and r.profile == "pi4" and r.precision == "fp32"
    assert r.ridge == pytest.approx(ridge_point(load_profile("pi4"), "fp32"))
    # a projection puts every node exactly on its roof, so the model sits at or under the bound
    for p in r.layers:
        assert p.fraction == pytest.approx(1.0) or p.flops == 0
    assert r.fraction_of_bound <= 1.0 + 1e-9
    assert r.latency_ms == pytest.approx(sum(p.ms for p in r.layers))
    md = r.markdown()
    assert "Projection from counts, not a measurement" in md and "Counting convention" in md
    j, m, png = write_report(r, tmp_path / "pi4", "edge-ser bench ...")
    assert json.loads(j.read_text())["profile"] == "pi4"
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (700, 1340, 3) and (img < 250).mean() > 0.02  # something drawn
    assert (img[:, 1000:] < 250).any()  # the key of the numbered layers


def test_measured_on_the_host_from_the_cli(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    from edge_ser import hostbench
    from edge_ser.cli import main

    quick = hostbench.host_profile(quick=True, cache=tmp_path / "host.json")
    monkeypatch.setattr(
        "edge_ser.profiles.load_profile", lambda name: quick if name == "host" else load_profile(name)
    )
    out = tmp_path / "host"
    assert (
        main(["bench", str(AV), "--profile", "host", "--engine", "numpy", "--runs", "20", "--out", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    assert "Measured on this machine" in text and "numpy's profiler" in text
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["measured"] and data["latency_ms"] > 0 and data["attained_gflops"] > 0
    convs = [p for p in data["layers"] if p["op"] == "Conv"]
    assert len(convs) == 5 and all(p["ms"] > 0 and p["gflops"] > 0 for p in convs)
    assert np.isclose(data["flops"], sum(p["flops"] for p in data["layers"]))
    assert out.with_suffix(".png").stat().st_size > 10_000 and "Made by" in out.with_suffix(".md").read_text()


def test_tflite_int8_on_a_profile_without_an_int8_roof_says_why():
    from edge_ser.profiles import ProfileError

    with pytest.raises(ProfileError, match="int8"):
        build_report(load_bundle(AV), _no_int8(), engine="tflite-int8")


@pytest.mark.skipif(tflite.unavailable() is not None, reason="no TFLite interpreter")
def test_a_measured_int8_run_without_an_int8_roof_is_still_measured():
    """The host profile has no int8 roof (numpy cannot time one), so `bench --engine tflite-int8` on the host, and
    `--delegate` which the projection sends there, always failed: an int8 engine could not be timed at all. The
    run is measured and placed against the fp32 roof, saying so."""
    r = build_report(load_bundle(SER), _no_int8(), engine="tflite-int8", runs=5, measured=True)
    assert (
        r.precision == "int8"
        and r.latency_ms > 0
        and r.peak_gflops
        == build_report(load_bundle(SER), _no_int8(), engine="tflite-fp32", runs=5, measured=True).peak_gflops
    )
    assert any("No int8 roof" in n and "for reference only" in n for n in r.notes)
    assert r.to_dict()["units"]["roof"] == "GFLOP/s" and r.to_dict()["units"]["compute"] == "GOP/s"


@pytest.mark.skipif(tflite.unavailable() is not None, reason="no TFLite interpreter")
def test_the_markdown_labels_an_fp32_roof_under_an_int8_run_as_its_json_does():
    """A review: the JSON said `units.roof` GFLOP/s, but the Markdown printed the same fp32 roof as "peak 12 GOP/s",
    "ridge point ... OP/byte" and "bound GOP/s". The roof's figures carry the roof's unit; the run's, the run's."""
    r = build_report(load_bundle(SER), _no_int8(), engine="tflite-int8", runs=5, measured=True)
    md = r.markdown()
    assert f"peak {r.peak_gflops:.4g} GFLOP/s (" in md and f"ridge point {r.ridge:.2f} FLOP/byte" in md
    assert "| attained GOP/s | attained GB/s | bound GFLOP/s |" in md and "| OPs |" in md
    assert r.roof_unit == r.to_dict()["units"]["roof"] == "GFLOP/s"
    own = build_report(load_bundle(SER), load_profile("pi4"), engine="tflite-int8").markdown()
    assert "GOP/s (peaks.cpu.int8" in own and " OP/byte." in own and "| bound GOP/s |" in own


@pytest.mark.skipif(tflite.unavailable() is not None, reason="no TFLite interpreter")
def test_a_measured_engine_without_a_profiler_is_not_said_to_have_timed_the_nodes():
    """TFLite has no per-node profiler, yet its per-node table began "time from the engine's profiler: onnxruntime's
    counts whole microseconds, averaged over the middle half of the runs", over a column of empty cells; and the
    measured table's "bound" column had no unit where the projected one says "bound GFLOP/s"."""
    r = build_report(load_bundle(SER), load_profile("pi4"), engine="tflite-fp32", runs=5, measured=True)
    md = r.markdown()
    assert all(p.ms is None for p in r.layers)
    assert "time from the engine's profiler" not in md and "tflite-fp32 has no per-node profiler" in md
    assert "| attained GFLOP/s | GB/s | bound GFLOP/s | of bound |" in md


def test_the_plots_bandwidth_label_stays_inside_the_frame(tmp_path):
    """Where the memory roof enters the plot at its bottom edge, its "4.84 GB/s" label was drawn under the frame,
    among the x axis's ticks and over its title ("4.84 GB/sarithmetic intensity"): nothing red belongs there."""
    from edge_ser.roofline import MARGIN, H, W, plot_png

    for bundle, engine in ((SER, "tflite-int8"), (AV, "onnxruntime"), (FACE, "onnxruntime")):
        r = build_report(load_bundle(bundle), load_profile("pi4"), engine=engine)
        img = cv2.imread(str(plot_png(r, tmp_path / f"{bundle.name}.png")))
        below = img[H - MARGIN[3] + 3 :, :W].astype(int)
        red = (below[..., 2] > 150) & (below[..., 0] < 120) & (below[..., 1] < 120)
        assert not red.any(), bundle.name


def _no_int8():
    """The pi4 profile without its int8 roofline choice."""
    from edge_ser.profiles import Profile

    d = load_profile("pi4").to_dict()
    for choices in d["roofline"]["targets"].values():
        choices.pop("int8", None)
    return Profile.from_dict(d)


# ------------------------------------------------------------------------------------------- review defects


def test_projection_roof_is_for_the_threads_used():
    """The Pi 4's 48 GFLOP/s is four cores: one engine thread gets 12, and the report says how many threads."""
    b, pi4 = load_bundle(SER), load_profile("pi4")
    one = build_report(b, pi4, engine="onnxruntime", threads=1)
    assert one.peak_gflops == pytest.approx(12.0) and one.threads == 1 and one.roof_threads == 1
    assert one.ridge == pytest.approx(12.0 / 4.84)
    assert "1 thread" in one.markdown().splitlines()[0] and "1 of 4 cores" in one.markdown()
    assert one.to_dict()["threads"] == 1
    two = build_report(b, pi4, engine="onnxruntime", threads=2)
    assert two.peak_gflops == pytest.approx(24.0)
    for many in (4, 16, None):
        assert build_report(b, pi4, engine="onnxruntime", threads=many).peak_gflops == pytest.approx(48.0)


def test_measured_roof_pairs_the_one_thread_peak_with_the_one_thread_triad(tmp_path):
    """The host's one-thread report used the one-thread GEMM peak with the all-thread triad."""
    from edge_ser import hostbench

    host = hostbench.host_profile(quick=True, cache=tmp_path / "host.json")
    runs = {r["threads"]: r["gbps"] for r in host.measurement["triad"]["runs"]}
    roof = device_roof(host, "fp32", 1)
    assert roof.bandwidth == pytest.approx(runs[1]) and "1 thread" in roof.bandwidth_source
    assert roof.peak == pytest.approx(host.peaks["cpu"]["fp32"].single_thread)
    full = device_roof(host, "fp32", None)
    assert full.bandwidth == pytest.approx(runs[max(runs)]) and full.peak == host.peaks["cpu"]["fp32"].value


def test_orin_4gb_is_not_projected_faster_than_the_8gb_and_caveats_are_printed():
    b = load_bundle(SER)
    small = build_report(b, load_profile("orin-nano-4gb"), engine="onnxruntime")
    big = build_report(b, load_profile("orin-nano-8gb"), engine="onnxruntime")
    assert small.latency_ms >= big.latency_ms
    md = small.markdown()
    device = md[md.index("Device:") : md.index("Model:")]
    assert "memory.measured_gbps is unverified (`verified: false`)" in device and "8GB" in device
    pi4 = build_report(b, load_profile("pi4"), engine="onnxruntime").markdown()
    assert "1.8 GHz" in pi4[pi4.index("Device:") : pi4.index("Model:")]  # the 1.5 GHz profile says so


def test_bytes_are_counted_at_the_engines_width_with_the_packed_figure_apart():
    b, pi5 = load_bundle(SER), load_profile("pi5")
    f32 = build_report(b, pi5, engine="onnxruntime")
    assert f32.bytes == count(b, held_bytes=4).bytes and f32.packed_bytes == count(b).bytes < f32.bytes
    assert build_report(b, pi5, engine="numpy").bytes == f32.bytes  # float32 in memory at run time
    assert build_report(b, pi5, engine="tflite-fp16").bytes == f32.bytes  # DEQUANTIZE'd at load
    i8 = build_report(b, pi5, engine="tflite-int8")
    assert i8.bytes == count(b, held_bytes=1, activation_bytes=1).bytes
    assert f32.packed_latency_ms < f32.latency_ms
    for r in (f32, i8):
        md = r.markdown()
        assert "packed sub-byte kernel" in md and f"{r.packed_bytes:,} bytes" in md
        assert "pessimistic" not in md and "4 bytes per output-channel scale" not in md
    assert "activations int8" in i8.convention and "OP/byte" in i8.markdown()


def test_unknown_engine_is_refused_when_projecting(capsys):
    from edge_ser.cli import main

    with pytest.raises(ConfigError, match="engine 'bogus' is not known"):
        build_report(load_bundle(SER), load_profile("pi4"), engine="bogus")
    assert main(["bench", str(SER), "--profile", "pi4", "--engine", "bogus"]) == 2
    assert "engine 'bogus' is not known" in capsys.readouterr().err
    tflite = build_report(load_bundle(SER), load_profile("pi4"), engine="tflite")
    assert tflite.engine == "tflite-int8"  # what "tflite" loads: the bundle's int8 variant
    assert any("--engine tflite is projected as tflite-int8" in n for n in tflite.notes)  # said (a review)


def test_options_a_projection_does_not_use_are_named_as_ignored(capsys):
    """`--profile pi5 --runs 20 --remeasure` was accepted and ignored without a word (a review)."""
    from edge_ser.cli import main

    assert main(["bench", str(SER), "--profile", "pi5", "--runs", "20", "--remeasure", "--json", "-"]) == 0
    assert (
        "--runs and --remeasure time the host; a projection for pi5 runs nothing" in capsys.readouterr().err
    )
    assert main(["bench", str(SER), "--profile", "pi5", "--json", "-"]) == 0
    assert "ignored" not in capsys.readouterr().err


def test_a_delegate_is_refused_when_projecting(capsys):
    """A projection puts the model on the profile's CPU roof: a TFLite delegate (an NPU, a Coral) was silently
    ignored, so `--profile pi5 --delegate libedgetpu.so.1` printed a CPU projection under the delegate's name."""
    from edge_ser.cli import main

    with pytest.raises(ConfigError, match="--delegate libedgetpu.so.1: a projection for pi5"):
        build_report(load_bundle(SER), load_profile("pi5"), engine="tflite", delegate="libedgetpu.so.1")
    args = ["bench", str(SER), "--profile", "pi5", "--engine", "tflite", "--delegate", "libedgetpu.so.1"]
    assert main(args) == 2
    assert "--profile host there" in capsys.readouterr().err


def test_gpu_providers_on_a_projection_are_said_to_be_left_out(capsys):
    """`--profile orin-nano-8gb --providers tensorrt,cuda` printed a CPU projection and said nothing of the
    providers: a reader took it for the GPU's figure. (Not refused as --delegate is: EDGE_SER_PROVIDERS, a Jetson
    service's default, would then refuse every projection made there.)"""
    from edge_ser.cli import main

    gpu = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    r = build_report(load_bundle(SER), load_profile("orin-nano-8gb"), engine="onnxruntime", providers=gpu)
    said = [n for n in r.notes if n.startswith("--providers")]
    assert len(said) == 1 and "TensorrtExecutionProvider, CUDAExecutionProvider" in said[0]
    assert "CPU roof" in said[0] and "--profile host" in said[0]
    cpu = build_report(
        load_bundle(SER), load_profile("pi4"), engine="onnxruntime", providers=("CPUExecutionProvider",)
    )
    assert not [n for n in cpu.notes if n.startswith("--providers")]
    assert main(["bench", str(SER), "--profile", "orin-nano-8gb", "--providers", "tensorrt,cuda"]) == 0
    assert (
        "- --providers TensorrtExecutionProvider, CUDAExecutionProvider: not projected"
        in capsys.readouterr().out
    )


def test_projection_labels_say_projected_lower_bound():
    md = build_report(load_bundle(SER), load_profile("pi4"), engine="onnxruntime").markdown()
    assert "attained" not in md and "of bound" not in md
    assert "projected ms (estimate, excl. per-node dispatch)" in md and "| projected ms |" in md


def test_face_bundle_reports_per_crop_and_per_decision():
    b = load_bundle(FACE)
    spec = b.input_kind.spec
    r = build_report(b, load_profile("pi5"), engine="onnxruntime")
    assert r.rows_per_decision == spec.k * spec.rows_per_crop == 30
    assert r.decision_ms == pytest.approx(30 * r.latency_ms)
    assert "per face crop" in r.markdown() and f"{r.decision_ms:.4f} ms per decision" in r.markdown()
    assert build_report(load_bundle(SER), load_profile("pi5")).rows_per_decision is None


def test_a_patch_bundle_reports_per_decision_too():
    """tiny_transformer's latency is per log-Mel patch and a 3 s window is 12 patches: the report said nothing of
    it, as only face bundles had a per-decision line."""
    r = build_report(load_bundle(ROOT / "bundles" / "tiny_transformer_emodb"), load_profile("pi4"))
    assert r.rows_per_decision == 12 and r.decision_ms == pytest.approx(12 * r.latency_ms)
    assert "12 rows (patches of a 3 s live window)" in r.markdown() and "per face crop" not in r.markdown()


def test_a_report_says_what_it_measured():
    """Reports gave no run count, model file, versions or date, and a cached host profile's age was not shown."""
    r = build_report(load_bundle(FACE), load_profile("pi4"), engine="tflite-int8")
    assert r.setup["model file"] == "model_int8.tflite" and r.setup["timed runs"] is None  # a projection
    assert "numpy" in r.setup["versions"] and "Setup: model file model_int8.tflite" in r.markdown()
    assert build_report(load_bundle(SER), load_profile("pi5")).setup["model file"] == "model.onnx"


class _Spiky:
    """A stand-in engine whose first predict() touches ~96 MB and frees it: a peak the current RSS misses."""

    name = "tflite-fp32"

    def __init__(self):
        self.calls = 0

    def predict(self, x):
        self.calls += 1
        if self.calls == 1:
            # 96 MB of fresh pages, every one touched: an anonymous map, not the heap, whose freed pages earlier
            # tests may have left resident (then touching them raised no peak: the test failed after others)
            big = mmap.mmap(-1, 96 << 20)
            pages = np.frombuffer(big, np.uint8)
            pages[:: mmap.PAGESIZE] = 1
            del pages
            big.close()
        return np.zeros((1, 7), np.float32)


def test_peak_memory_is_the_high_water_mark_of_this_engine(monkeypatch):
    from edge_ser import roofline

    if not roofline.reset_peak_memory() or roofline.process_memory_mb("VmHWM") is None:
        pytest.skip("needs Linux's VmHWM and /proc/self/clear_refs")
    monkeypatch.setattr("edge_ser.engines.load_engine", lambda *a, **k: _Spiky())
    earlier = np.ones(256 << 17)  # a 256 MB peak before the report: not this engine's
    del earlier
    host = load_profile("pi4")
    r = build_report(load_bundle(SER), host, engine="tflite-fp32", runs=5, measured=True)
    assert r.peak_rss_mb - r.rss_before_mb >= 80  # the transient 96 MB is in the peak
    assert r.peak_rss_mb - r.rss_before_mb < 200  # the earlier 256 MB is not
    assert "reset before the engine was loaded" in r.peak_rss_scope


def test_bench_options_checked_before_any_work(tmp_path, capsys):
    from edge_ser.cli import main

    ser = str(SER)
    assert main(["bench", ser, "--profile", "pi4", "--mic", "USB", "--overlay"]) == 2
    assert "--mic, --overlay: only with --live" in capsys.readouterr().err
    assert main(["bench", ser, "--profile", "pi4", "--web", "8000"]) == 2
    assert "--web: only with --live" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", ser, "--threads", "0"])
    assert "argument --threads: 0 must be in 1..256" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["bench", ser, "--profile", "pi4", "--out", str(blocker / "sub" / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "--out" in captured.err


def test_bench_json_writes_the_roofline_report(tmp_path, capsys):
    from edge_ser.cli import main

    assert main(["bench", str(SER), "--profile", "pi4", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["profile"] == "pi4" and data["threads"] == 1 and data["measured"] is False
    out = tmp_path / "fusion.json"
    assert main(["bench", str(FUSION), "--profile", "pi4", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["branches"]) == {"audio", "face"} and doc["branches"]["face"]["rows_per_decision"]


def test_benchmark_script_reports_fusion_branches():
    from unittest import mock

    with mock.patch.dict("os.environ"):  # the script pins BLAS threads in the environment at import
        from benchmarks import roofline as script

    fusion = load_bundle(FUSION)
    parts = script.models(fusion)
    assert [n for n, _ in parts] == list(fusion.branches)
    for name, model in parts:
        assert model.graph and ("host", "onnxruntime") in script.jobs(model)
        r = build_report(model, load_profile("pi4"), engine="onnxruntime")
        assert script.stem("av_fusion", "pi4", "onnxruntime", name) == f"av_fusion_pi4_{name}"
        assert name in script.summary([("av_fusion", name, r)])


def test_benchmark_script_with_bundles_keeps_the_summary(tmp_path, monkeypatch, capsys):
    """`benchmarks/roofline.py --bundles X` rewrites X's reports but not roofline.{md,json}, which cover every
    bundle (it replaced them with X's rows alone); a name not in bundles/ is a usage error, not an empty run."""
    import sys
    from unittest import mock

    with mock.patch.dict("os.environ"):  # the script pins BLAS threads in the environment at import
        from benchmarks import roofline as script
    _common = sys.modules[script.write_results.__module__]
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["roofline.py", "--bundles", "nope", "ser_emodb"])
    with pytest.raises(SystemExit) as e:
        script.main()
    assert e.value.code == 2 and "--bundles nope: not in bundles/" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["roofline.py", "--bundles", "ser_emodb", "--runs", "3"])
    script.main()
    assert "not rewritten (--bundles" in capsys.readouterr().err
    written = sorted(p.name for p in (tmp_path / "roofline").iterdir())
    assert "ser_emodb_host.json" in written and "ser_emodb_pi5_int8.md" in written
    assert not (tmp_path / "roofline.md").exists() and not (tmp_path / "roofline.json").exists()


def test_a_phased_int8_projection_says_its_weights_are_held_as_copies():
    """The phased int8 file holds several copies of the weights (ser_emodb: 187 KB against 53 KB counted), which
    the note on the extra multiply-adds did not say: the memory-bound projection was ~3x low without a word."""
    r = build_report(load_bundle(SER), load_profile("pi5"), engine="tflite-int8")
    note = next(n for n in r.notes if "phased int8" in n)
    assert "weights are held as copies too" in note and "projection may be up to that factor low" in note


def test_reports_name_their_units():
    """An int8 report's *_gflops fields hold GOP/s, and the profile's summary said 'FLOP/byte' for the int8 ridge."""
    pi5 = load_profile("pi5")
    d = build_report(load_bundle(SER), pi5, engine="tflite-int8").to_dict()
    assert d["units"] == {"compute": "GOP/s", "roof": "GOP/s", "intensity": "OP/byte", "latency": "ms"}
    assert (
        build_report(load_bundle(SER), pi5, engine="onnxruntime").to_dict()["units"]["compute"] == "GFLOP/s"
    )
    assert "roofline[cpu, int8]: ridge 76.80 OP/byte" in str(pi5)


def test_the_plot_numbers_layers_and_names_them_in_a_key():
    """The plot's layer labels were the first 24 characters of each ONNX name ('blocks/blocks.0/main/mai'), drawn
    on top of each other; the layers are now numbered, clear of other text where there is room, and named in full
    (less the repeated scope levels) in a key beside the plot."""
    from edge_ser.roofline import _place, short_name

    assert short_name("/blocks/blocks.0/main/main.0/main.0.0/Conv") == "blocks.0/main.0.0/Conv"
    assert short_name("/video/video.3/Conv") == "video.3/Conv" and short_name("Identity_0") == "Identity_0"
    assert short_name("/classifier/Gemm") == "classifier/Gemm"
    assert _place((0, 0, 10, 10), [(10, 0, 20, 10)]) and not _place((0, 0, 10, 10), [(5, 5, 20, 20)])


def test_a_report_is_read_back_from_its_json_and_drawn_again(tmp_path):
    """`benchmarks/roofline.py --replot` draws the stored reports again after a change to the plot, measuring
    nothing: `RooflineReport.from_dict` is the inverse of `to_dict`."""
    from edge_ser.roofline import RooflineReport, plot_png

    r = build_report(load_bundle(SER), load_profile("pi5"), engine="onnxruntime", threads=1)
    d = json.loads(json.dumps(r.to_dict()))
    assert RooflineReport.from_dict(d).to_dict() == d
    assert cv2.imread(str(plot_png(RooflineReport.from_dict(d), tmp_path / "r.png"))).shape == (700, 1340, 3)


def test_stored_notes_on_layers_above_a_roof_are_written_again_in_todays_wording():
    """The committed reports kept 'a few hundred KB of activations' after the note came to name the bytes those
    layers move: `refresh_roof_notes` writes the note again from the report's own points, in place, and leaves
    every other note and figure alone."""
    from dataclasses import replace

    from edge_ser.roofline import RooflineReport, refresh_roof_notes

    r = build_report(load_bundle(SER), load_profile("pi5"), engine="onnxruntime", threads=1)
    # a stored measured report with one layer above the memory roof and an old note between two others
    layers = [replace(p, fraction=1.5, limit="memory") if i == 0 else p for i, p in enumerate(r.layers)]
    old = "Above the memory roof: x. Their data (a few hundred KB of activations) stays in the caches."
    stored = RooflineReport.from_dict({**r.to_dict(), "measured": True, "notes": ["first", old, "last"]})
    stored = replace(stored, layers=layers)
    fresh = refresh_roof_notes(stored)
    kb = layers[0].bytes / 1000  # KB = 1e3 bytes (it was KiB labelled KB)
    assert fresh.notes[0] == "first" and fresh.notes[-1] == "last" and len(fresh.notes) == 3
    assert fresh.notes[1].startswith(
        f"Above the memory roof: {layers[0].name}. The bytes they move ({kb:,.0f} KB"
    )
    assert replace(fresh, notes=stored.notes) == stored  # nothing else moved
    # a projection has no attained figures above its roofs: the note goes
    assert refresh_roof_notes(replace(stored, measured=False)).notes == ["first", "last"]


def test_a_report_names_the_build_of_the_bundle_it_is_of() -> None:
    """A report said which model file and versions, not which build of the bundle (a review): its setup now holds
    the manifest's sha256, the one `manifest.sha256` holds and a fusion bundle pins."""
    report = build_report(load_bundle(SER), load_profile("pi5"))
    want = (SER / "manifest.sha256").read_text().split()[0]
    assert report.setup["bundle manifest sha256"] == want
    assert f"bundle manifest sha256 {want}" in report.markdown()


def test_replot_writes_the_summary_again_from_the_stored_reports(tmp_path):
    """The summary table kept 'projected (lower bound)' after the reports' wording changed, since `--replot`
    redrew the reports alone: the summary is now read back from roofline.json's rows, each from its report as
    stored now (a `--bundles` rerun's report replaces the old figures), and written in today's wording."""
    from unittest import mock

    with mock.patch.dict("os.environ"):  # the script pins BLAS threads in the environment at import
        from benchmarks import roofline as script

    r = build_report(load_bundle(SER), load_profile("pi5"), engine="onnxruntime", threads=1)
    row = {"branch": None, **r.to_dict(), "bundle": "/elsewhere/bundles/ser_emodb", "latency_ms": 9.0}
    (tmp_path / "roofline.json").write_text(json.dumps({"rows": [row]}))
    folder = tmp_path / "roofline"
    folder.mkdir()
    assert (
        script.stored_rows(tmp_path / "roofline.json", folder)[0][2].latency_ms == 9.0
    )  # no report: the row
    (folder / "ser_emodb_pi5.json").write_text(json.dumps(r.to_dict()))
    [(name, branch, back)] = script.stored_rows(tmp_path / "roofline.json", folder)
    assert (name, branch, back.latency_ms) == ("ser_emodb", None, r.latency_ms)
    text = script.summary([(name, branch, back)])
    assert "| ser_emodb |  | pi5 | onnxruntime |" in text and "projected (estimate)" in text
    assert "lower bound" not in text
    assert script.stored_rows(tmp_path / "absent.json", folder) == []


def test_a_fusion_bundles_branch_rows_keep_its_name_when_read_back(tmp_path):
    """`--replot` named av_fusion's branch rows after the branch bundles (av_fn_audio | audio) and linked them to
    reports that do not exist (av_fn_audio_host_audio.md): a branch's report holds the branch's path,
    `bundles/av_fusion/../av_fn_audio`. Rows now store the bundle's name; an older summary's is derived."""
    from unittest import mock

    with mock.patch.dict("os.environ"):
        from benchmarks import roofline as script

    r = build_report(load_bundle(SER), load_profile("pi5"), engine="onnxruntime", threads=1)
    old = {"branch": "audio", **r.to_dict(), "bundle": "/w/bundles/av_fusion/../av_fn_audio"}
    plain = {"branch": None, **r.to_dict(), "bundle": "/w/bundles/av_fn_audio"}
    (tmp_path / "roofline.json").write_text(json.dumps({"rows": [old, plain]}))
    folder = tmp_path / "roofline"
    folder.mkdir()
    (folder / "av_fusion_pi5_audio.json").write_text(json.dumps({**r.to_dict(), "latency_ms": 7.0}))
    rows = script.stored_rows(tmp_path / "roofline.json", folder)
    assert [(n, b) for n, b, _ in rows] == [("av_fusion", "audio"), ("av_fn_audio", None)]
    assert rows[0][2].latency_ms == 7.0  # its own report was found
    text = script.summary(rows)
    assert "| av_fusion | audio | pi5 |" in text and "(roofline/av_fusion_pi5_audio.md)" in text
    assert [row["name"] for row in script.summary_rows(rows)] == ["av_fusion", "av_fn_audio"]
    (tmp_path / "roofline.json").write_text(json.dumps({"rows": script.summary_rows(rows)}))
    assert [(n, b) for n, b, _ in script.stored_rows(tmp_path / "roofline.json", folder)] == [
        ("av_fusion", "audio"),
        ("av_fn_audio", None),
    ]


@pytest.mark.parametrize(
    ("out", "json_name", "mode"),
    [
        ("rep", "rep.json", ["--profile", "pi4"]),
        ("rep.json", "rep.json", ["--profile", "pi4"]),
        ("rep", "./rep.md", ["--profile", "pi4"]),
        ("rep", "rep.json", ["--live", "--audio-file", "x.wav"]),
    ],
)
def test_bench_refuses_json_and_out_writing_the_same_file(
    tmp_path, capsys, monkeypatch, out, json_name, mode
):
    """`--out rep --json rep.json` wrote rep.json twice, the last write replacing the first."""
    from edge_ser.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["bench", str(SER), *mode, "--out", out, "--json", json_name]) == 2
    err = capsys.readouterr().err
    assert f"--json {json_name} and --out {out}: both would write" in err and "another file name" in err
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_bench_json_beside_out_of_a_fusion_branch_is_refused(tmp_path, capsys):
    from edge_ser.cli import main

    out = tmp_path / "rep"
    assert (
        main(["bench", str(FUSION), "--profile", "pi4", "--out", str(out), "--json", f"{out}_audio.json"])
        == 2
    )
    assert f"both would write {out}_audio.json" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bench_json_and_out_apart_are_both_written(tmp_path, capsys):
    from edge_ser.cli import main

    assert (
        main(
            [
                "bench",
                str(SER),
                "--profile",
                "pi4",
                "--out",
                str(tmp_path / "rep"),
                "--json",
                str(tmp_path / "all.json"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.json", "rep.json", "rep.md", "rep.png"]


def test_more_threads_than_cores_is_called_oversubscribed_in_the_report():
    """`--threads 99` on a 2-core machine read "Roof for 99 threads (all 2 cores)"."""
    b = load_bundle(SER)
    md = build_report(b, load_profile("pi4"), engine="onnxruntime", threads=99).markdown()
    want = "Roof for 99 threads (oversubscribed: more threads than the 4 cores, which they share; the roof counts the 4 cores):"
    assert want in md
    assert "(all 4 cores)" not in md
    assert "(all 4 cores)" in build_report(b, load_profile("pi4"), engine="onnxruntime", threads=4).markdown()


def test_bench_warns_when_threads_exceed_the_cpus_it_runs_on(tmp_path, capsys, monkeypatch):
    from edge_ser.cli import main

    monkeypatch.setattr("edge_ser.hostbench.usable_cpus", lambda: 2)
    missing = str(tmp_path / "missing.wav")
    assert main(["bench", str(SER), "--live", "--audio-file", missing, "--threads", "3"]) == 2
    assert "edge-ser bench: warning: --threads 3 on 2 CPUs this process may run on" in capsys.readouterr().err
    main(["bench", str(SER), "--live", "--audio-file", missing, "--threads", "2"])
    assert "warning" not in capsys.readouterr().err
    # a projection for another board runs nothing here: no warning about this machine
    assert main(["bench", str(SER), "--profile", "pi4", "--threads", "3", "--json", "-"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_projection_names_its_board_with_the_right_article():
    md = build_report(
        load_bundle(SER), load_profile("orin-nano-8gb"), engine="onnxruntime", threads=1
    ).markdown()
    assert "nothing ran on an orin-nano-8gb;" in md  # was "a orin-nano-8gb"
    assert (
        "nothing ran on a pi4;" in build_report(load_bundle(SER), load_profile("pi4"), threads=1).markdown()
    )


def test_run_warns_when_threads_exceed_the_cpus_it_runs_on(tmp_path, capsys, monkeypatch):
    """`edge-ser run --threads N` above the CPUs said nothing, as bench did before it warned."""
    from edge_ser.cli import main

    monkeypatch.setattr("edge_ser.hostbench.usable_cpus", lambda: 2)
    missing = str(tmp_path / "missing.wav")
    assert main(["run", str(SER), "--audio-file", missing, "--threads", "3"]) == 2
    assert "edge-ser run: warning: --threads 3 on 2 CPUs this process may run on" in capsys.readouterr().err
    main(["run", str(SER), "--audio-file", missing, "--threads", "2"])
    assert "warning: --threads" not in capsys.readouterr().err


def test_resident_memory_is_in_mb_of_1e6_bytes(tmp_path, monkeypatch):
    """/proc/self/status gives KiB; the reports divided by 1024 and printed the MiB as "MB" (4.9 % low, and
    GB/s in the same report is 1e9 bytes/s): a review. VmRSS 100000 kB is 102.4 MB."""
    import builtins

    from edge_ser import roofline

    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  200000 kB\nVmRSS:\t  100000 kB\n", encoding="ascii")
    real_open = builtins.open
    monkeypatch.setattr(
        builtins, "open", lambda f, *a, **k: real_open(status if f == "/proc/self/status" else f, *a, **k)
    )
    assert roofline.process_memory_mb() == pytest.approx(102.4)
    assert roofline.process_memory_mb("VmHWM") == pytest.approx(204.8)
    assert roofline.peak_memory_mb() == pytest.approx(204.8)


def test_bench_out_with_a_dot_in_its_name_keeps_it_and_each_fusion_branch_its_files(tmp_path, capsys):
    """`--out rep/pi4_1.5ghz` wrote pi4_1.json (Path.with_suffix cut the name at its dot), and both branches of a
    fusion bundle (pi4_1.5ghz_audio, pi4_1.5ghz_face) the same pi4_1.json / .md / .png, the face branch's over the
    audio one's; an extension --out writes itself (`--out rep.md`) is still the one replaced."""
    from edge_ser.cli import main

    assert main(["bench", str(FUSION), "--profile", "pi4", "--out", str(tmp_path / "pi4_1.5ghz")]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"pi4_1.5ghz_{b}{s}" for b in ("audio", "face") for s in (".json", ".md", ".png")}
    assert json.loads((tmp_path / "pi4_1.5ghz_audio.json").read_text())["model"] == "functionals_mlp"
    capsys.readouterr()
    assert main(["bench", str(SER), "--profile", "pi4", "--out", str(tmp_path / "sub" / "rep.md")]) == 0
    assert {p.name for p in (tmp_path / "sub").iterdir()} == {"rep.json", "rep.md", "rep.png"}
    assert "wrote " + str(tmp_path / "sub" / "rep.json") in capsys.readouterr().out
    # --json beside --out is checked against the files --out really writes
    assert (
        main(
            [
                "bench",
                str(SER),
                "--profile",
                "pi4",
                "--out",
                str(tmp_path / "v1.2"),
                "--json",
                str(tmp_path / "v1.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "bench",
                str(SER),
                "--profile",
                "pi4",
                "--out",
                str(tmp_path / "v1.2"),
                "--json",
                str(tmp_path / "v1.2.json"),
            ]
        )
        == 2
    )


def test_an_int8_reports_wording_counts_ops_as_the_rest_of_it_does():
    """The int8 report counts OPs (its tables, units, intensity), but its counting convention said "Intensity =
    FLOPs / ..." and "2 FLOPs per multiply-accumulate", and its projection "max(FLOPs / peak, ...)": the wording
    follows the report's op name (`op`); a float report keeps FLOPs."""
    b, pi5 = load_bundle(SER), load_profile("pi5")
    i8, f32 = build_report(b, pi5, engine="tflite-int8"), build_report(b, pi5, engine="onnxruntime")
    assert i8.op == "OP" and "FLOP" not in i8.markdown() and "FLOP" not in i8.to_dict()["convention"]
    assert "Intensity = OPs / (weight + activation bytes)" in i8.markdown()
    assert "Intensity = FLOPs / (weight + activation bytes)" in f32.markdown()
    assert "max(FLOPs / peak" in f32.markdown() and "2 FLOPs per multiply-accumulate" in f32.convention


def test_benchmark_script_refuses_runs_below_1(monkeypatch, capsys):
    """A review: `benchmarks/roofline.py --runs 0` was a StatisticsError traceback ('no median for empty data')."""
    import sys
    from unittest import mock

    with mock.patch.dict("os.environ"):  # the script pins BLAS threads in the environment at import
        from benchmarks import roofline as script

    monkeypatch.setattr(sys, "argv", ["benchmarks/roofline.py", "--runs", "0", "--bundles", "laq_mlp_emodb"])
    monkeypatch.setattr(script, "build_report", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    with pytest.raises(SystemExit) as exit_:
        script.main()
    assert exit_.value.code == 2 and "--runs 0: at least 1 timed call" in capsys.readouterr().err


def test_a_manifest_with_a_null_tflite_block_reads_as_no_variants():
    """`tflite: null` passes the manifest check (a hand-edited manifest); the roofline read it with
    `.get("tflite", {}).get(...)`, an AttributeError on None. It now reads as a bundle without TFLite variants."""
    from types import SimpleNamespace

    from edge_ser import roofline as rl

    for block in (None, "x", {"variants": None}):
        b = SimpleNamespace(manifest={"tflite": block, "model": {"file": "model.onnx"}}, root=".")
        assert rl._int8_phases(b) is None and rl._int8_file_bytes(b) is None
        assert rl.model_file(b, "tflite-int8") == "model.onnx"


def test_the_model_file_named_is_the_one_the_engine_runs():
    """A review: the report's `model file` was read from a `model.file` in the manifest, a field nothing writes,
    documents or runs (the engines always run model.onnx), so a hand-edited manifest made the report name a file
    that never ran. It is model.onnx, or the TFLite variant's file."""
    from types import SimpleNamespace

    from edge_ser import roofline as rl

    variants = {"int8": {"file": "model_int8.tflite"}}
    b = SimpleNamespace(
        manifest={"model": {"file": "weights.esq"}, "tflite": {"variants": variants}}, root="."
    )
    assert rl.model_file(b, "numpy") == "model.onnx"
    assert rl.model_file(b, "onnxruntime") == "model.onnx"
    assert rl.model_file(b, "tflite-int8") == "model_int8.tflite"


def test_out_without_opencv_is_refused_before_anything_runs_or_is_written(tmp_path, capsys, monkeypatch):
    """A review: without opencv-python-headless (a core install: numpy only), `bench --out OUT` printed the report,
    wrote OUT.json and OUT.md, then failed on OUT.png: a half-written set, and no --json file. It now says so
    before anything runs, and write_report draws the plot before it writes anything."""
    import sys

    from edge_ser.cli import main
    from edge_ser.errors import MissingDependencyError

    r = build_report(load_bundle(SER), load_profile("pi4"), engine="onnxruntime")
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv-python-headless were not installed
    out = tmp_path / "rep"
    args = ["bench", str(SER), "--profile", "pi4", "--out", str(out), "--json", str(tmp_path / "r.json")]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "opencv-python-headless is not installed" in captured.err
    with pytest.raises(MissingDependencyError):
        write_report(r, out)
    assert list(tmp_path.iterdir()) == []


def test_a_model_above_the_memory_roof_with_no_node_timed_gets_the_note():
    """A review: `bench --engine tflite-fp32` on the host (no per-node profiler) gave the model "126% of bound" on
    the memory side with no word why; the compute side already named "the model" when no node was above."""
    from dataclasses import replace

    from edge_ser.roofline import refresh_roof_notes

    r = build_report(load_bundle(SER), load_profile("pi5"), engine="onnxruntime", threads=1)
    assert r.intensity < r.ridge
    untimed = [replace(p, ms=None, gflops=None, gbps=None, fraction=None) for p in r.layers]
    above = replace(r, measured=True, layers=untimed, attained_gflops=1.3 * r.bound_gflops, notes=[])
    notes = refresh_roof_notes(above).notes
    assert len(notes) == 1 and notes[0].startswith(
        f"Above the memory roof: the model. The bytes they move ({r.bytes / 1000:,.0f} KB"
    )
    assert refresh_roof_notes(replace(above, attained_gflops=0.9 * r.bound_gflops)).notes == []


def test_benchmark_script_reads_a_bundles_tflite_variants_by_the_one_rule():
    """A review: benchmarks/roofline.py had its own copy of `schema.tflite_variants`, and a manifest's
    `tflite: {variants: null}` (which passes the manifest check) was a TypeError there."""
    from types import SimpleNamespace
    from unittest import mock

    with mock.patch.dict("os.environ"):  # the script pins BLAS threads in the environment at import
        from benchmarks import roofline as script

    for block in (None, {"variants": None}):
        assert script.jobs(SimpleNamespace(manifest={"tflite": block}))[-1] == (
            "orin-nano-8gb",
            "onnxruntime",
        )
    assert ("pi5", "tflite-int8") in script.jobs(load_bundle(SER))


def test_a_measured_layer_above_the_peak_is_drawn_inside_the_plot():
    """A review: the plot's top was the peak x 2 rounded up to a decade, so a measured layer above that (an engine's
    kernels beating the GEMM-measured peak, which a note explains) was drawn off the picture: no dot at all."""
    from dataclasses import replace

    from edge_ser.roofline import MARGIN, H, W, plot_image

    r = build_report(load_bundle(SER), load_profile("pi4"), engine="onnxruntime")
    p = max(r.layers, key=lambda q: q.flops)
    high = replace(p, gflops=50 * r.peak_gflops, fraction=50.0, limit="compute")
    img = plot_image(replace(r, measured=True, layers=[high])).astype(int)
    left, top, right, bottom = MARGIN
    frame = img[top : H - bottom, left : W - right]
    dot = (abs(frame[..., 0] - 200) < 8) & (abs(frame[..., 1] - 120) < 8) & (abs(frame[..., 2] - 30) < 8)
    assert dot.sum() > 20
