"""Device profiles (firmware_profiles/*.yaml), their validation, the roofline math, and the measured host profile."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_ser import hostbench
from edge_ser.errors import ConfigError
from edge_ser.profiles import (
    HOST,
    Profile,
    ProfileError,
    available_profiles,
    load_profile,
    ridge_point,
    roofline_bound,
)

REPO = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO / "firmware_profiles"
SHIPPED = ("pi4", "pi5", "orin-nano-8gb", "orin-nano-8gb-super", "orin-nano-4gb", "jetson-nano")


def raw(name: str) -> dict:
    return yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())


def write(tmp_path: Path, data: dict, name: str = "pi4") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------------------
# Shipped profiles
# ------------------------------------------------------------------------------------------------------------


def test_every_board_of_the_issue_is_shipped() -> None:
    names = available_profiles()
    assert set(SHIPPED) <= set(names)
    assert HOST in names
    assert {p.stem for p in PROFILES_DIR.glob("*.yaml")} == set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_and_validates(name: str) -> None:
    p = load_profile(name)
    assert p.name == name
    assert p.cpu.cores >= 1 and p.cpu.clock_ghz is not None
    assert p.roofline.default == "cpu", "our engines run on the CPU unless a GPU provider is chosen"
    for precision in ("fp32", "fp16", "int8"):
        assert ridge_point(p, precision) > 0
    assert "fp32" in p.peaks["cpu"]
    assert p.caches and p.power_modes
    assert sum(m.default for m in p.power_modes) <= 1
    if p.gpu is not None:
        assert "gpu" in p.roofline.targets and ridge_point(p, "fp32", target="gpu") > 0
    assert str(p).startswith(name)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_figure_has_a_source(name: str) -> None:
    p = load_profile(name)
    figures = dict(p.figures())
    assert "cpu.clock_ghz" in figures and "peaks.cpu.fp32" in figures
    for path, fig in figures.items():
        assert fig.source.strip(), path
        assert fig.verified or fig.note.strip(), f"{path}: unverified figure without a note saying why"
    for cache in p.caches:
        assert cache.source.strip()
    for mode in p.power_modes:
        assert mode.source.strip()
    assert p.memory.source and p.cpu.source and (p.gpu is None or p.gpu.source)

    # Independently of the parser: every mapping in the YAML that holds a `value` holds a `source`.
    def walk(node, path="") -> None:
        if isinstance(node, dict):
            if "value" in node:
                assert str(node.get("source", "")).strip(), f"{name}.yaml: {path} has a value but no source"
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(raw(name))


@pytest.mark.parametrize("name", SHIPPED)
def test_cpu_peaks_agree_with_their_derivation(name: str) -> None:
    """'cores x GHz x N FLOP/cycle' in a derivation must give the stated value (catches edit slips)."""
    from edge_ser.profiles.profile import PEAK_DERIVATION

    p = load_profile(name)
    for precision, peak in p.peaks["cpu"].items():
        m = PEAK_DERIVATION.match(peak.derivation)
        assert m, f"peaks.cpu.{precision}: derivation does not state cores x GHz x ops/cycle"
        cores, ghz, per = int(m.group(1)), float(m.group(2)), int(m.group(3))
        assert cores == p.cpu.cores and ghz == pytest.approx(p.cpu.clock_ghz.value)
        assert peak.value == pytest.approx(cores * ghz * per, rel=2e-3), f"peaks.cpu.{precision}"


@pytest.mark.parametrize("name", SHIPPED)
def test_theoretical_bandwidth_matches_bus_and_rate(name: str) -> None:
    m = load_profile(name).memory
    assert m.theoretical_gbps is not None
    assert m.theoretical_gbps.value == pytest.approx(m.bus_bits / 8 * m.transfer_rate_mts / 1000, rel=0.02)
    if m.measured_gbps is not None:
        assert m.measured_gbps.value < m.theoretical_gbps.value
        assert m.measured_gbps.method and m.measured_gbps.threads


@pytest.mark.parametrize("name", SHIPPED)
def test_cpu_bandwidth_follows_one_convention(name: str) -> None:
    """Every CPU roof is a measured one-thread figure in STREAM counting (firmware_profiles/README.md): a
    published triad where there is one, else a copy or a borrowed figure marked unverified, never the bus."""
    p = load_profile(name)
    for precision, choice in p.roofline.targets["cpu"].items():
        assert choice.bandwidth == "memory.measured_gbps", f"roofline.targets.cpu.{precision}"
    m = p.memory.measured_gbps
    assert m.threads == 1
    assert "triad" in m.method.lower() or (not m.verified and m.note)


def test_pi5_uses_the_published_one_thread_triad_and_the_orin_4gb_is_not_faster_than_the_8gb() -> None:
    pi5 = load_profile("pi5").memory.measured_gbps
    assert pi5.value == pytest.approx(8.0) and pi5.threads == 1 and "Triad" in pi5.method
    assert "5.52" in pi5.note and "No published STREAM triad" not in pi5.note
    small, big = load_profile("orin-nano-4gb"), load_profile("orin-nano-8gb")
    assert small.bandwidth("fp32").value <= big.bandwidth("fp32").value
    assert small.compute_peak("fp32").value <= big.compute_peak("fp32").value
    assert not small.bandwidth("fp32").verified


def test_starting_figures_of_the_issue() -> None:
    pi4, pi5 = load_profile("pi4"), load_profile("pi5")
    assert pi4.peaks["cpu"]["fp32"].value == pytest.approx(48.0)
    assert 4.5 <= pi4.memory.measured_gbps.value <= 5.6  # STREAM triad 4.84, best kernel 5.56
    assert pi5.peaks["cpu"]["fp32"].value == pytest.approx(153.6)
    assert pi5.peaks["cpu"]["int8"].value == pytest.approx(614.4)
    assert pi5.memory.theoretical_gbps.value == pytest.approx(17.07)
    orin = load_profile("orin-nano-8gb")
    assert orin.peaks["gpu"]["fp32"].value == pytest.approx(1280.0)
    assert orin.peaks["gpu"]["int8"].value == pytest.approx(20000.0)
    assert orin.peaks["gpu"]["int8"].sparse == pytest.approx(40000.0)
    assert orin.memory.theoretical_gbps.value == pytest.approx(68.0)
    assert not orin.peaks["gpu"]["fp16"].verified  # derived, not published
    sup = load_profile("orin-nano-8gb-super")
    assert sup.memory.theoretical_gbps.value == pytest.approx(102.0)
    assert sup.peaks["gpu"]["int8"].sparse == pytest.approx(67000.0)
    assert [m.name for m in sup.power_modes if m.default] == ["25W"]
    assert load_profile("orin-nano-4gb").memory.theoretical_gbps.value == pytest.approx(34.0)
    nano = load_profile("jetson-nano")
    assert nano.peaks["gpu"]["fp32"].value == pytest.approx(236, abs=0.5)
    assert nano.memory.theoretical_gbps.value == pytest.approx(25.6)
    assert "int8" not in nano.peaks["gpu"]  # Maxwell: no DP4A, no tensor cores


def test_fp16_on_cores_without_fp16_arithmetic_uses_the_fp32_roof() -> None:
    for name in ("pi4", "jetson-nano"):
        p = load_profile(name)
        assert "fp16" not in p.peaks["cpu"]
        assert p.compute_peak("fp16") is p.peaks["cpu"]["fp32"]


@pytest.mark.parametrize("name", SHIPPED)
def test_round_trip_through_dict_and_json(name: str) -> None:
    p = load_profile(name)
    d = json.loads(json.dumps(p.to_dict()))
    q = Profile.from_dict(d, origin=str(PROFILES_DIR / f"{name}.yaml"), expect_name=name)
    assert q == p


def test_load_by_path_and_from_extra_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = load_profile(PROFILES_DIR / "pi5.yaml")
    assert p.name == "pi5"
    data = raw("pi5")
    data["name"] = "my-board"
    write(tmp_path, data, "my-board")
    monkeypatch.setenv("EDGE_SER_PROFILES", str(tmp_path))
    assert "my-board" in available_profiles()
    assert load_profile("my-board").peaks == p.peaks


def test_unknown_profile_name_lists_the_available_ones() -> None:
    with pytest.raises(ProfileError, match=r"pi6: no such profile \(available: .*pi4.*pi5.*host"):
        load_profile("pi6")
    with pytest.raises(ProfileError, match="profile file not found"):
        load_profile("/nonexistent/pi4.yaml")
    # review: `--profile pi4.yaml` outside firmware_profiles/ said only "not found"
    with pytest.raises(ProfileError, match=r"pi4.yaml: profile file not found \(the shipped profile of that name is "
                       r"--profile pi4\); shipped profiles: .*pi5"):  # fmt: skip
        load_profile("pi4.yaml")
    with pytest.raises(ProfileError, match=r"mine.yaml: profile file not found; shipped profiles: .*pi4"):
        load_profile("mine.yaml")


def test_load_profile_host_goes_through_hostbench(monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = object()
    monkeypatch.setattr(hostbench, "host_profile", lambda: sentinel)
    assert load_profile("host") is sentinel


# ------------------------------------------------------------------------------------------------------------
# Bad profiles: clear errors naming the file and the field path
# ------------------------------------------------------------------------------------------------------------


def _set(d: dict, path: str, value) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[k]
    if value is _DELETE:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


class _Delete:
    def __repr__(self) -> str:
        return "<delete>"


_DELETE = _Delete()

BAD = [
    ("peaks.cpu.fp32.value", -3, r"^pi4\.yaml: peaks\.cpu\.fp32\.value: must be > 0, got -3$"),
    ("peaks.cpu.fp32.value", 0, r"pi4\.yaml: peaks\.cpu\.fp32\.value: must be > 0, got 0"),
    ("peaks.cpu.fp32.source", _DELETE, r"pi4\.yaml: peaks\.cpu\.fp32\.source: missing \(required\)"),
    ("peaks.cpu.fp32.unit", "GOP/s", r"pi4\.yaml: peaks\.cpu\.fp32\.unit: 'GOP/s' must be 'GFLOP/s'"),
    ("peaks.cpu.fp32.value", 2e6, r"pi4\.yaml: peaks\.cpu\.fp32\.value: 2000000\.0 is absurd \(> 1e\+06 GFLOP/s\)"),
    ("peaks.cpu.fp32.value", 48000, r"peaks\.cpu\.fp32\.value: 48000 GFLOP/s is absurd: 8000 operations per cycle"),
    ("cpu.clock_ghz.value", 1500, r"pi4\.yaml: cpu\.clock_ghz\.value: 1500 is absurd \(> 10 GHz\)"),
    ("memory.theoretical_gbps.value", 20000, r"memory\.theoretical_gbps\.value: 20000 is absurd \(> 10000 GB/s\)"),
    ("memory.measured_gbps.value", 40.0, r"memory\.measured_gbps\.value: 40 GB/s exceeds theoretical_gbps 12\.8"),
    ("memory.transfer_rate_mts", 2400, r"memory\.theoretical_gbps\.value: 12\.8 GB/s disagrees with bus_bits"),
    ("cpu.cores", "4", r"pi4\.yaml: cpu\.cores: must be an integer, got text '4'"),
    ("cpu.cores", 4.5, r"pi4\.yaml: cpu\.cores: must be an integer, got number 4\.5"),
    ("peaks.cpu.fp32.value", "1e3", r"must be a finite number, got text '1e3' \(a quoted number\? YAML reads 1e3 as text"),
    ("peaks.cpu.fp32.value", True, r"peaks\.cpu\.fp32\.value: must be a finite number, got boolean True"),
    ("peaks.cpu.fp32.value", float("nan"), r"peaks\.cpu\.fp32\.value: must be a finite number, got number nan"),
    ("cpu.frequency", 1.5, r"pi4\.yaml: cpu\.frequency: unknown key \(expected one of: clock_ghz, cores, model"),
    ("peaks.npu", {"fp32": {"value": 1, "unit": "GFLOP/s", "source": "x"}}, r"peaks\.npu: unknown key"),
    ("peaks.cpu.fp8", {"value": 1, "unit": "GFLOP/s", "source": "x"}, r"peaks\.cpu\.fp8: unknown key"),
    ("peaks.gpu", {"fp32": {"value": 1, "unit": "GFLOP/s", "source": "x"}}, r"peaks\.gpu: gpu peaks given but"),
    ("memory.theoretical_gbps.note", _DELETE,
     r"memory\.theoretical_gbps\.note: missing: a figure with `verified: false` must say why"),
    ("peaks.cpu.int8.verified", "no", r"peaks\.cpu\.int8\.verified: must be true or false, got text 'no'"),
    ("name", "pi5", r"pi4\.yaml: name: 'pi5' does not match the file name pi4\.yaml"),
    ("schema_version", 2, r"schema_version: 2 is not supported"),
    ("description", "  ", r"pi4\.yaml: description: must not be empty"),
    ("caches", {"l1": 32}, r"pi4\.yaml: caches: must be a list, got mapping"),
    ("roofline.targets.cpu.fp32.compute", "peaks.cpu.fp16",
     r"roofline\.targets\.cpu\.fp32\.compute: 'peaks\.cpu\.fp16' names no peak of this profile"),
    ("roofline.targets.cpu.fp32.bandwidth", "memory.stream",
     r"roofline\.targets\.cpu\.fp32\.bandwidth: 'memory\.stream' must be one of"),
    ("roofline.default", "gpu", r"roofline\.default: 'gpu' is not one of roofline\.targets"),
    ("roofline.targets.cpu.fp32.compute", "memory.measured_gbps",
     r"roofline\.targets\.cpu\.fp32\.compute: 'memory\.measured_gbps' names no peak of this profile"),
    ("memory", _DELETE, r"pi4\.yaml: memory: missing \(required\)"),
    # a fp32 roof on the int8 peak was accepted, and the report printed "peak 24 GFLOP/s (peaks.cpu.int8 96 GOP/s"
    ("roofline.targets.cpu.fp32.compute", "peaks.cpu.int8",
     r"roofline\.targets\.cpu\.fp32\.compute: 'peaks\.cpu\.int8' is in GOP/s; a roof for fp32 needs a peak in GFLOP/s"),
    ("roofline.targets.cpu.int8.compute", "peaks.cpu.fp32",
     r"roofline\.targets\.cpu\.int8\.compute: 'peaks\.cpu\.fp32' is in GFLOP/s; a roof for int8 needs a peak in GOP/s"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "pattern"), BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_bad_profile_gives_a_clear_error(tmp_path: Path, path: str, value, pattern: str) -> None:
    data = raw("pi4")
    _set(data, path, value)
    f = write(tmp_path, data)
    with pytest.raises(ProfileError) as info:
        load_profile(f)
    assert isinstance(info.value, ConfigError)
    assert any(re.search(pattern, line) for line in info.value.problems), info.value.problems
    assert all(line.startswith("pi4.yaml: ") for line in info.value.problems)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = raw("pi4")
    data["peaks"]["cpu"]["fp32"]["value"] = -1
    data["cpu"]["cores"] = "four"
    data["bogus"] = 1
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, data))
    text = str(info.value)
    assert "peaks.cpu.fp32.value: must be > 0, got -1" in text
    assert "cpu.cores: must be an integer" in text
    assert "bogus: unknown key" in text
    assert len(info.value.problems) == 3


def test_a_copied_profiles_name_is_reported_after_its_other_problems(tmp_path: Path) -> None:
    """A profile copied to a new file name failed first with "name: 'pi4' does not match the file name", above the
    problems of its figures: the mismatch is listed with them, after them, and is still an error on its own."""
    data = raw("pi4")
    data["cpu"]["cores"] = -4
    data["peaks"]["cpu"]["fp32"]["value"] = -1
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, data, "mine"))
    problems = info.value.problems
    assert len(problems) == 3 and "cpu.cores: must be > 0" in problems[0], problems
    assert problems[-1].startswith("mine.yaml: name: 'pi4' does not match the file name mine.yaml"), problems
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, raw("pi4"), "alone"))
    assert info.value.problems == [
        "alone.yaml: name: 'pi4' does not match the file name alone.yaml; set `name: alone` (a profile is "
        "loaded by its file's name)"
    ]


def test_a_profile_file_named_host_is_refused(tmp_path: Path) -> None:
    """A review: a board's profile saved as host.yaml with `name: host` (e.g. `hostbench --json > host.yaml`, or a
    Pi 4 copy) was taken for the measured host: `bench --profile ./host.yaml` timed the model here against the
    file's Pi 4 roof, titled "Measured on this machine", while saying --runs was ignored."""
    data = raw("pi4")
    data["name"] = HOST
    with pytest.raises(ProfileError, match="'host' is the profile measured on this machine"):
        load_profile(write(tmp_path, data, HOST))


def test_yaml_level_errors(tmp_path: Path) -> None:
    f = tmp_path / "pi4.yaml"
    f.write_text("name: pi4\nname: pi5\n")
    with pytest.raises(ProfileError, match=r"pi4\.yaml: line 2: key 'name' given twice"):
        load_profile(f)
    f.write_text("name: [pi4\n")
    with pytest.raises(ProfileError, match=r"pi4\.yaml: line \d+, column \d+: not valid YAML"):
        load_profile(f)
    f.write_text("- just\n- a list\n")
    with pytest.raises(ProfileError, match=r"pi4\.yaml: <top level>: must be a mapping, got list"):
        load_profile(f)
    f.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(f)


# ------------------------------------------------------------------------------------------------------------
# Roofline math
# ------------------------------------------------------------------------------------------------------------


def test_ridge_point_and_bound() -> None:
    pi4 = load_profile("pi4")
    peak, bw = 48.0, 4.84
    ridge = ridge_point(pi4, "fp32")
    assert ridge == pytest.approx(peak / bw)
    assert roofline_bound(pi4, "fp32", 1.0) == pytest.approx(bw)  # memory-bound: intensity x bandwidth
    assert roofline_bound(pi4, "fp32", 1000.0) == pytest.approx(peak)  # compute-bound: the peak
    assert roofline_bound(pi4, "fp32", ridge) == pytest.approx(peak)
    assert roofline_bound(pi4, "fp32", 0.0) == 0.0
    arr = roofline_bound(pi4, "fp32", np.array([[0.5, 2.0], [20.0, 200.0]]))
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 2)
    np.testing.assert_allclose(arr, [[0.5 * bw, 2 * bw], [peak, peak]])
    assert isinstance(roofline_bound(pi4, "fp32", 3), float)
    # int8 intensities are op/byte against the int8 peak; fp16 uses the fp32 roof on the A72
    assert ridge_point(pi4, "int8") == pytest.approx(96.0 / bw)
    assert ridge_point(pi4, "fp16") == pytest.approx(ridge)


def test_gpu_target_uses_gpu_peak_and_bus_bandwidth() -> None:
    orin = load_profile("orin-nano-8gb")
    assert ridge_point(orin, "fp32", target="gpu") == pytest.approx(1280.0 / 68.0)
    assert ridge_point(orin, "int8", target="gpu") == pytest.approx(20000.0 / 68.0)
    assert ridge_point(orin, "fp32") == pytest.approx(144.0 / 13.46)  # default target: the CPU
    assert orin.bandwidth("fp32", "gpu").value == 68.0


def test_roofline_errors_name_what_is_missing() -> None:
    pi4 = load_profile("pi4")
    with pytest.raises(
        ProfileError, match=r"pi4\.yaml: roofline\.targets\.gpu: .*no roofline for target 'gpu'"
    ):
        ridge_point(pi4, "fp32", target="gpu")
    with pytest.raises(
        ProfileError, match=r"roofline\.targets\.cpu\.int4: .*no roofline for int4 on cpu"
    ) as info:
        ridge_point(pi4, "int4")
    # a board's profile is told how to add the roof, not sent to "a board's profile (e.g. --profile pi5)" and to
    # "bench a fp32/fp16/int8 engine" (the host's advice; no engine computes in fp16)
    assert "A board's profile" not in str(info.value) and "fp16/" not in str(info.value)
    assert "add roofline.targets.cpu.int4 to the profile" in str(info.value)
    with pytest.raises(ConfigError, match="intensity must be finite and >= 0"):
        roofline_bound(pi4, "fp32", -1.0)
    with pytest.raises(ConfigError, match="intensity must be finite and >= 0"):
        roofline_bound(pi4, "fp32", np.array([1.0, np.inf]))
    with pytest.raises(ProfileError, match="peaks.dla.int8: no such figure"):
        pi4.resolve("peaks.dla.int8")


# ------------------------------------------------------------------------------------------------------------
# The host profile, measured on the spot
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_host(tmp_path_factory: pytest.TempPathFactory) -> tuple[Profile, Path]:
    cache = tmp_path_factory.mktemp("hostcache") / "host-profile.json"
    return hostbench.host_profile(quick=True, cache=cache), cache


def test_host_profile_is_plausible_and_quick(quick_host) -> None:
    p, _ = quick_host
    assert p.measurement["mode"] == "quick"  # the small sizes (no wall-clock bound: a loaded box is slow)
    assert p.name == HOST
    for precision in ("fp32", "fp64"):
        peak = p.peaks["cpu"][precision]
        assert peak.value > 0 and peak.unit == "GFLOP/s"  # measured rates: positive, never a speed bound
        assert peak.single_thread is not None and peak.single_thread > 0
        assert peak.threads >= 1 and "numpy.matmul" in peak.method
        assert "measured on" in peak.source and "edge_ser.hostbench" in peak.source
    bw = p.memory.measured_gbps
    assert bw.value > 0 and "24 bytes/element" in bw.method
    assert ridge_point(p, "fp32") > 0 and ridge_point(p, "fp16") == ridge_point(p, "fp32")
    m = p.measurement
    assert set(m["not_measured"]) == {"fp16", "int8"}
    assert "emulated" in m["not_measured"]["fp16"]
    # measured on every CPU when OpenBLAS can be grown in-process (an earlier CLI call in this process set it to
    # one thread, which blas_info then reports: the test failed after test_cli_messages), else on BLAS's own count
    grown = hostbench._openblas() is not None
    assert m["gemm"]["float32"]["threads"] == (m["cpu"]["cpus"] if grown else m["blas"]["threads"])
    assert m["gemm"]["float32_1thread"]["threads"] == 1
    assert m["triad"]["array_bytes"] >= 4 * m["triad"]["llc_bytes"] or m["triad"]["array_bytes"] >= 4 << 20
    with pytest.raises(
        ProfileError, match=r"no roofline for int8 on cpu .*not measured: numpy's integer matmul"
    ):
        ridge_point(p, "int8")


def test_host_profile_cache_and_remeasure(quick_host, monkeypatch: pytest.MonkeyPatch) -> None:
    p, cache = quick_host
    doc = json.loads(cache.read_text())
    assert doc["schema"] == hostbench.CACHE_SCHEMA and len(doc["entries"]) == 1
    calls = []
    real = hostbench.measure
    monkeypatch.setattr(hostbench, "measure", lambda **kw: calls.append(kw) or real(**kw))
    assert hostbench.host_profile(quick=True, cache=cache) == p  # from the cache, no measurement
    assert calls == []
    again = hostbench.host_profile(quick=True, cache=cache, remeasure=True)
    assert len(calls) == 1 and again.measurement["measured_at"] >= p.measurement["measured_at"]
    cache.write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable host-profile cache"):
        hostbench.host_profile(quick=True, cache=cache)
    assert len(calls) == 2
    assert json.loads(cache.read_text())["schema"] == hostbench.CACHE_SCHEMA  # rewritten


def test_cpu_info_reads_the_machine() -> None:
    info = hostbench.cpu_info()
    assert info["cpus"] >= 1 and info["model"]
    for c in info["caches"]:
        assert c["size_kib"] > 0 and c["scope"] in ("per-core", "per-cluster", "shared")
    assert hostbench.last_level_cache_bytes(info["caches"]) > 0
    assert hostbench.blas_info()["threads"] >= 1


def test_micro_benchmarks_directly() -> None:
    r = hostbench.triad_gbps(1, hostbench.QUICK, array_bytes=8 << 20)
    assert r["gbps"] > 0 and r["threads"] == 1 and r["runs"] >= hostbench.QUICK.min_runs
    # STREAM's count: read b and c, write a, 8 bytes each, over the fastest pass of 1 Mi elements
    assert r["array_mib"] == 8.0 and r["gbps"] == pytest.approx(3 * (8 << 20) / r["best_s"] / 1e9)
    g = hostbench.gemm_gflops("float32", hostbench.QUICK)
    assert g["gflops"] > 0 and g["n"] >= 256 and g["runs"] >= hostbench.QUICK.min_runs
    assert g["gflops"] == pytest.approx(2 * g["n"] ** 3 / g["best_s"] / 1e9)  # n^3 multiply-adds
    with pytest.raises(ConfigError, match="not BLAS-backed"):
        hostbench.gemm_gflops("float16")
    both = hostbench.triad_gbps([1, 2], hostbench.QUICK, array_bytes=8 << 20)
    assert [r["threads"] for r in both] == [1, 2] and all(r["gbps"] > 0 for r in both)


def test_one_thread_gemm_without_openblas_runs_in_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other BLAS (MKL, Accelerate, a distro's reference BLAS) cannot be limited in-process: a child is."""
    monkeypatch.setattr(hostbench, "_openblas", lambda: None)
    results, method = hostbench._gemm_one_thread(hostbench.QUICK)
    assert method.startswith("child process")
    assert results["float32"]["gflops"] > 0 and results["float64"]["gflops"] > 0


@pytest.mark.slow
def test_full_measurement_records_mode_and_duration(tmp_path: Path) -> None:
    """The default (full) measurement runs and records its mode and duration (its time budget, < 10 s on a
    quiet machine, is a benchmark figure, not a test assertion: a loaded machine is slower)."""
    p = hostbench.host_profile(cache=tmp_path / "c.json")
    assert p.measurement["mode"] == "full"
    assert p.measurement["duration_s"] > 0
    assert math.isfinite(p.peaks["cpu"]["fp32"].value)


def test_embedded_ort_matmul_model_is_what_onnx_builds():
    """hostbench carries a 114-byte ONNX MatMul model (no onnx on a device): it must be the one onnx builds."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from edge_ser import hostbench

    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", "n"]) for n in "ABC"]
    g = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm", vi[:2], vi[2:])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="edge-ser")
    m.ir_version = 8
    onnx.checker.check_model(m)
    assert m.SerializeToString() == hostbench._ORT_MATMUL


def test_ort_gemm_is_measured_when_onnxruntime_is_there():
    pytest.importorskip("onnxruntime")
    from edge_ser import hostbench

    r = hostbench.ort_gemm_gflops(1, hostbench.QUICK, n=256)
    assert r is not None and r["gflops"] > 0 and r["threads"] == 1
    assert r["n"] == 256 and r["runs"] >= hostbench.QUICK.min_runs and "onnxruntime" in r["library"]
    # the rate is the fastest call's 256^3 multiply-adds
    assert r["gflops"] == pytest.approx(2 * 256**3 / r["best_s"] / 1e9)


def test_a_peak_edited_without_its_derivation_is_refused(tmp_path) -> None:
    """Review: a copy of pi5.yaml with fp32 1536 (its derivation still '4 cores x 2.4 GHz x 16' = 153.6) loaded, and
    its reports used a roof ten times too high. The loader now checks a peak against a derivation of that form."""
    text = (PROFILES_DIR / "pi5.yaml").read_text()
    assert "value: 153.6" in text
    bad = tmp_path / "pi5x.yaml"
    bad.write_text(text.replace("value: 153.6", "value: 1536.0", 1))
    with pytest.raises(ProfileError, match="1536 but its derivation .* gives 153.6"):
        load_profile(bad)


def test_the_firmware_profiles_are_package_data_and_listed_once() -> None:
    """Review: a plain `pip install .` had no profile but "host" (bench --profile pi5: 'no such profile'): they
    were only copied into the device wheel. edge_ser/profiles/firmware now links to firmware_profiles/ and is
    package data; a checkout finds each folder once."""
    from pathlib import Path

    from edge_ser.profiles import profile_dirs

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "profiles/firmware/*.yaml" in data["edge_ser"]
    assert {"edge-ser.service", "edge-ser-start"} <= set(data["edge_ser_deploy"])
    assert (root / "edge_ser" / "profiles" / "firmware" / "pi5.yaml").is_file()
    dirs = [d.resolve() for d in profile_dirs()]
    assert len(dirs) == len(set(dirs))


def test_the_all_core_gemm_is_timed_on_every_core_when_blas_starts_on_one() -> None:
    """`edge-ser` starts numpy's OpenBLAS on one thread; the host profile's all-core GEMM was then timed on one
    thread and labelled all cores (a "2 threads" roof below the one-thread roof, a review). It now sets OpenBLAS
    to every usable CPU for that run, and the cache key no longer depends on the starting count."""
    if hostbench._openblas() is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS this process can set the threads of")
    cpus = hostbench.cpu_info()["cpus"]
    with hostbench._blas_threads(1):
        record = hostbench.measure(quick=True)
        key_one = hostbench.machine_key(quick=True)[0]
    assert record["gemm"]["float32"]["threads"] == cpus and record["gemm"]["float32_1thread"]["threads"] == 1
    assert key_one == hostbench.machine_key(quick=True)[0]


def test_machine_load_from_cpu_times() -> None:
    """A review: av_cnn at 124 % of the host's one-thread peak, the peak measured (and cached) while the shared
    machine was busy. Other processes' CPU time over the measurement's wall time says so (faked figures here)."""
    quiet = hostbench.machine_load(busy_s=14.0, own_s=12.0, wall_s=10.0, cpus=2)
    assert quiet["others_cpus"] == 0.2 and quiet["busy"] is False and quiet["cpus"] == 2
    busy = hostbench.machine_load(busy_s=27.0, own_s=12.0, wall_s=10.0, cpus=2)
    assert busy["others_cpus"] == 1.5 and busy["busy"] is True
    unknown = hostbench.machine_load(busy_s=None, own_s=12.0, wall_s=10.0, cpus=2)
    assert unknown["busy"] is None and "/proc/stat" in unknown["method"]


def test_host_profile_says_when_it_was_measured_on_a_busy_machine(quick_host, tmp_path: Path) -> None:
    import copy

    from edge_ser.roofline import profile_caveats

    p, _ = quick_host
    assert set(p.measurement["load"]) >= {"others_cpus", "cpus", "busy", "method"}  # measure() records it
    rec = copy.deepcopy(p.measurement)
    rec["load"] = hostbench.machine_load(busy_s=27.0, own_s=12.0, wall_s=10.0, cpus=2)
    busy = hostbench.profile_from_measurement(rec)
    caveats = profile_caveats(busy, "fp32")
    assert any("busy: other processes used 1.50 of its 2 CPUs" in c and "--remeasure" in c for c in caveats)
    rec["load"] = hostbench.machine_load(busy_s=14.0, own_s=12.0, wall_s=10.0, cpus=2)
    assert not any("busy" in c for c in profile_caveats(hostbench.profile_from_measurement(rec), "fp32"))
    del rec["load"]  # a record from before the check
    assert any("busy while it was measured is unknown" in c for c in profile_caveats(
        hostbench.profile_from_measurement(rec), "fp32"))  # fmt: skip


def test_host_profile_cache_of_schema_1_is_measured_again(quick_host, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:  # fmt: skip
    """A /1 cache recorded no load: its peaks may have been measured on a busy machine, so it is not reused."""
    p, _ = quick_host
    key, fields = hostbench.machine_key(quick=True)
    cache = tmp_path / "host-profile.json"
    old = p.to_dict()
    old["measurement"] = {k: v for k, v in old["measurement"].items() if k != "load"}
    cache.write_text(json.dumps({"schema": "edge-ser-host-profile/1",
                                 "entries": {key: {"fields": fields, "profile": old}}}))  # fmt: skip
    calls = []
    monkeypatch.setattr(hostbench, "measure", lambda **kw: calls.append(kw) or p.measurement)
    again = hostbench.host_profile(quick=True, cache=cache)
    assert calls and "load" in again.measurement
    assert json.loads(cache.read_text())["schema"] == hostbench.CACHE_SCHEMA
    assert hostbench.host_profile(quick=True, cache=cache).notes == again.notes  # reused with its notes
    assert len(calls) == 1


def test_host_profile_cache_key_names_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp32 peak is the better of numpy's GEMM and onnxruntime's MatMul: a cache measured before onnxruntime
    was installed or upgraded kept numpy's lower peak, and the engine's runs came out above 100 % of it."""
    key, fields = hostbench.machine_key(quick=True)
    monkeypatch.setattr(hostbench, "library_versions", lambda dists: {"onnxruntime": "0.0.1"})
    other, other_fields = hostbench.machine_key(quick=True)
    assert other_fields["onnxruntime"] == "0.0.1" and other != key
    monkeypatch.setattr(hostbench, "library_versions", lambda dists: {})
    assert hostbench.machine_key(quick=True)[1]["onnxruntime"] is None
