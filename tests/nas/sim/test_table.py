"""nas.sim.table.write_with_manifest on a real full disk (tests/space/tmpfs.py): the old table stays readable."""

from __future__ import annotations

import errno

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nas.sim.table import write_with_manifest
from tests.space.tmpfs import tmpfs


def test_a_full_disk_keeps_the_previous_table_byte_identical(tmp_path):
    with tmpfs(tmp_path / "disk", "256k") as disk:
        path = disk / "table.parquet"
        write_with_manifest(path, pd.DataFrame({"a": [1.0, 2.0]}), b"manifest", {"runs": 2})
        before = path.read_bytes()
        grown = pd.DataFrame({"a": np.random.default_rng(0).random(200_000)})
        with pytest.raises(OSError) as caught:
            write_with_manifest(path, grown, b"manifest", {"runs": 200_000}, compression="none")
        assert caught.value.errno == errno.ENOSPC and str(path) in str(caught.value.filename)
        assert path.read_bytes() == before and sorted(p.name for p in disk.iterdir()) == ["table.parquet"]
        assert pq.read_table(path).num_rows == 2
