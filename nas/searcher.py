"""``StudySearcher``: Ray Tune's ``Searcher`` as a thin adapter over the Ray-free :class:`~nas.core.search.SearchCore`.

Ray Tune calls ``suggest`` / ``on_trial_result`` / ``on_trial_complete``; each is handed to the core,
which makes every decision (sampling, settling, statuses, telling the study). What is Ray's own stays here:
the ``Searcher`` base class and its checkpoint hooks.
"""

from __future__ import annotations

import json
from typing import Any

from ray.tune.search import Searcher

from nas.core.search import FINISHED, SearchCore


class StudySearcher(Searcher):
    """Hands Ray Tune one trial config per ``suggest()``; the core tells the study every outcome."""

    def __init__(self, core: SearchCore) -> None:
        super().__init__(metric=None, mode=None)
        self.core = core

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | None | str:
        suggestion = self.core.suggest(trial_id)
        return Searcher.FINISHED if suggestion == FINISHED else suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.core.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.core.on_trial_complete(trial_id, result, error)

    # Ray pickles the search algorithm for ``Tuner.restore``; we never restore that way (resume rebuilds
    # a Tuner against the study, the single source of truth), so the pickled form is an inert marker.

    def __getstate__(self) -> dict:
        return {"note": "state lives in the Optuna study; resume with `nas search --resume RUN`"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as handle:
            json.dump({"study": self.core.study.study_name, "note": "resume with `nas search --resume RUN`"}, handle)

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("restore a search with `nas search --resume RUN`, not through Ray Tune")
