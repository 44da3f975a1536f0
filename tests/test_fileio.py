"""Process-wide settings: signals held while files that belong together are written; the CLI's BLAS threads."""

from __future__ import annotations

import pytest


def test_signals_deferred_delivers_a_ctrl_c_after_the_block():
    """laq publishes its bundle, plan and summary inside it: a Ctrl-C there lands after all three are written."""
    import os
    import signal

    from edge_ser.fileio import signals_deferred

    done = []
    # a test run started in the background by a non-interactive shell inherits SIGINT ignored (Python then installs
    # no handler): the block restores what it found, so the Ctrl-C is what this test installs
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                done.append("after the signal")
        assert done == ["after the signal"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_the_cli_runs_numpys_blas_on_one_thread():
    """`edge-ser features` took 2.5x the CPU time with a BLAS thread per core (docs/live.md, "Threads")."""
    import subprocess
    import sys

    pytest.importorskip("threadpoolctl")
    code = (
        "import sys, edge_ser.cli; assert 'numpy' not in sys.modules; import numpy; "
        "from threadpoolctl import threadpool_info; "
        "print(sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}))"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[1]", out


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("rep.MD", "rep"),
        ("rep.Json", "rep"),
        ("rep.PNG", "rep"),
        ("rep.md", "rep"),
        ("pi4_1.5ghz", "pi4_1.5ghz"),
    ],
)
def test_an_out_extension_is_cut_whatever_its_case_as_eval_cuts_it(tmp_path, name, stem):
    """`--out rep.MD` wrote bench's rep.MD.json and rep.MD.md (the extension matched case-sensitively), while
    `edge-ser eval` wrote rep.json: one rule (`report_stem`), which eval's writer uses too."""
    import numpy as np

    from converters.evaluate import EvalReport, Metrics, write_outputs
    from edge_ser.fileio import report_file, report_stem

    suffixes = (".json", ".md", ".png")
    assert report_stem(tmp_path / name, suffixes) == tmp_path / stem
    assert report_file(tmp_path / name, ".json", suffixes) == tmp_path / f"{stem}.json"
    report = EvalReport("b", "d", "all", Metrics(("x", "y"), np.eye(2, dtype=int)))
    written = write_outputs(report, tmp_path / name)
    assert written == tuple(report_file(tmp_path / name, s, suffixes) for s in suffixes)
