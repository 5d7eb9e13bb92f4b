"""Recorded tables and searches replayed on them (``nas bench record``, ``nas bench curves``, ``nas bench search``).

:mod:`nas.sim.table` (the epoch table the simulator replays), :mod:`nas.sim.record` (recording it through a
real executor), :mod:`nas.sim.curvetable` / :mod:`nas.sim.curverecord` / :mod:`nas.sim.curvestats` (the
benchmark table: long learning curves, its recording, its noise figures), :mod:`nas.sim.replay` (a search on
the simulated executor), :mod:`nas.sim.compare` (strategies compared), :mod:`nas.sim.fidelity`.
"""
