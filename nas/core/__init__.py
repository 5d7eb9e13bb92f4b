"""The search core: a search's decisions without Ray (:mod:`nas.core.search`, :mod:`nas.core.rungs`,
:mod:`nas.core.resume`).

Importing it imports neither Ray nor ``reports`` (tested); executors (Ray Tune's adapters in
:mod:`nas.searcher` and :mod:`nas.moasha`) drive it.
"""
