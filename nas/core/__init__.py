"""The search core: a search's decisions without Ray (:mod:`nas.core.searchcore`, :mod:`nas.core.rungs`,
:mod:`nas.core.costaware`, :mod:`nas.core.schedulers`, :mod:`nas.core.resume`).

Importing it imports neither Ray nor ``reports`` (tested); the executors of :mod:`nas.executors` drive it.
"""
