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
