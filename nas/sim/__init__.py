"""Recorded tables and the simulated executor (``nas bench record``, ``nas bench search``).

:mod:`nas.sim.table` (the table file), :mod:`nas.sim.record` (recording through the real executor, Ray),
:mod:`nas.sim.executor` (a discrete-event executor over a table driving :class:`nas.core.search.SearchCore`,
no Ray).
"""
