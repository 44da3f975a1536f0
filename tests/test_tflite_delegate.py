"""`--delegate PATH` for the tflite engine: a missing file, a file that is no library, and a delegate for
another engine are refused with a typed error naming the path, from the API and from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_ser.cli import main
from edge_ser.engines import load_engine
from edge_ser.engines.tflite import load_delegate, unavailable
from edge_ser.errors import ConfigError, DelegateError

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "laq_mlp_emodb"
needs_tflite = pytest.mark.skipif(unavailable() is not None, reason=f"no TFLite interpreter: {unavailable()}")


def test_missing_delegate_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "libedgetpu.so.1"
    with pytest.raises(DelegateError, match="no such file") as e:
        load_delegate(missing)
    assert e.value.path == str(missing) and str(missing) in str(e.value)


def test_a_folder_is_not_called_missing(tmp_path: Path) -> None:
    with pytest.raises(DelegateError, match="is a folder; give the delegate's shared library") as e:
        load_delegate(tmp_path)
    assert "no such file" not in str(e.value)


def test_a_file_that_is_no_library_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "libdelegate.so"
    bogus.write_bytes(b"not an ELF file")
    with pytest.raises(DelegateError, match="not a loadable shared library") as e:
        load_delegate(bogus)
    assert str(bogus) in str(e.value)


@needs_tflite
def test_engine_with_a_missing_delegate(tmp_path: Path) -> None:
    missing = tmp_path / "nope.so"
    with pytest.raises(DelegateError, match=str(missing)):
        load_engine(BUNDLE, "tflite-int8", delegate=missing)


def test_delegate_for_another_engine_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="for the tflite engine"):
        load_engine(BUNDLE, "numpy", delegate=tmp_path / "x.so")


@needs_tflite
@pytest.mark.parametrize("command", ["predict", "bench"])
def test_cli_reports_a_missing_delegate(tmp_path: Path, capsys, command: str) -> None:
    missing = tmp_path / "libedgetpu.so.1"
    args = [command, str(BUNDLE)]
    if command == "predict":
        args.append(str(Path(__file__).parent))  # any folder: the engine is built before files are read
    assert main([*args, "--engine", "tflite-int8", "--delegate", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"TFLite delegate {missing}: no such file" in err


@needs_tflite
def test_a_relative_delegate_path_is_the_working_folders_and_a_library_that_is_no_delegate_is_said_once(
    tmp_path: Path, monkeypatch, capfd
) -> None:
    """Review: `--delegate libx.so` (a file in the working folder) was 'No such file' (dlopen searched the
    library path), and a library that is no delegate printed, after the clear error, an 'Exception ignored in
    Delegate.__del__' traceback from the loader."""
    import ctypes.util
    import gc
    import shutil

    lib = ctypes.util.find_library("z") or ctypes.util.find_library("m")
    found = next((p for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib")
                  if lib and (p := Path(d) / lib).is_file()), None)  # fmt: skip
    if found is None:
        pytest.skip("no system library to stand in for a delegate")
    shutil.copyfile(found, tmp_path / "libnotadelegate.so")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DelegateError, match="cannot be loaded by") as e:
        load_delegate("libnotadelegate.so")
    assert "cannot open shared object" not in str(e.value)
    gc.collect()
    assert "Exception ignored" not in capfd.readouterr().err
