"""edge_ser.fileio: signals held while files that belong together are written."""

from __future__ import annotations

import pytest


def test_signals_deferred_delivers_a_ctrl_c_after_the_block():
    """laq publishes its bundle, plan and summary inside it: a Ctrl-C there lands after all three are written."""
    import os
    import signal

    from edge_ser.fileio import signals_deferred

    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("after the signal")
    assert done == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
