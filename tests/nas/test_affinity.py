"""CPU pinning of the latency measurer and of trials."""

import os
import subprocess
import sys
import textwrap

import pytest

from nas.affinity import available_cores, measurer_cores

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(available_cores()) < 2,
                                reason="needs Linux and at least 2 cores")


def test_measurer_takes_the_last_cores_and_leaves_some():
    cores = available_cores()
    assert measurer_cores(1) == cores[-1:]
    assert measurer_cores(len(cores)) == []  # never all of them: trials need somewhere to run


def test_pinning_covers_every_thread_of_the_process():
    code = textwrap.dedent(
        """
        import os, threading, time
        from pathlib import Path
        from nas.affinity import available_cores, pin_away_from
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)
        worker.start()  # a thread that exists before pinning
        last = available_cores()[-1]
        assert pin_away_from([last])
        masks = {int(t.name): os.sched_getaffinity(int(t.name)) for t in Path("/proc/self/task").iterdir()}
        stop.set()
        print(all(last not in mask for mask in masks.values()), len(masks))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ok, threads = out.stdout.split()
    assert ok == "True" and int(threads) >= 2
