"""Starting Ray for a search: a local instance that listens on loopback only, and the environment Ray reads.

**The one place the library sets environment variables** (:func:`set_ray_environment`, called by
:func:`nas.search.start_ray` before every Ray Tune run, whether it starts Ray or finds it started):

* ``RAY_AIR_NEW_OUTPUT=0`` (unless set): Tune's console output off, our live view (:mod:`nas.progress`) replaces it;
* ``TUNE_DISABLE_SIGINT_HANDLER=1``: Tune leaves SIGINT alone, so :func:`nas.interruption.graceful_sigint`
  sees the Ctrl-C (both are read by Tune when ``Tuner.fit()`` starts);
* ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` for a local instance only (below).

By default Ray takes the machine's network address as its node address even for a one-machine
instance. For a local search nothing needs to be reachable from elsewhere, so we keep Ray on
127.0.0.1 (Ray's own switch for this is ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which makes it use the
loopback address; set here for this process and the workers it starts). Joining a real cluster with
``--address`` does not go through here and keeps Ray's normal behaviour.

The dashboard is off: it is an HTTP server that can submit jobs, so it must never listen on a network
address by accident. ``VIDEONAS_RAY_DASHBOARD=1`` turns it on for a local instance, bound to 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import ray


DASHBOARD_ENV = "VIDEONAS_RAY_DASHBOARD"


def ray_init_kwargs(*, joining: bool, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The ``ray.init`` keywords of a search: dashboard off, or on loopback when ``VIDEONAS_RAY_DASHBOARD=1``.

    ``joining`` an existing cluster (``--address``) never starts a dashboard: that cluster has its own.
    """
    # Ray's INFO lines ("Connecting to existing Ray cluster ...") would break the one-line errors on stderr (docs/cli-output.md)
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, namespace="videonas",
                                  logging_level=logging.WARNING)
    if not joining and environ.get(DASHBOARD_ENV) == "1":
        kwargs.update(include_dashboard=True, dashboard_host="127.0.0.1")
    return kwargs


# Read by Ray Tune when ``Tuner.fit()`` starts; ``setdefault``: a user's own choice wins.
TUNE_ENVIRONMENT = {
    "RAY_AIR_NEW_OUTPUT": "0",  # our live view replaces Tune's console output
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # Ctrl-C is ours: nas.interruption.graceful_sigint
}


def set_ray_environment() -> None:
    """Set what Ray Tune reads from the environment for a search (see the module's docstring)."""
    for name, value in TUNE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def init_local_ray(**kwargs: Any) -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time by Ray's node-address lookup
    ray.init(address="local", **kwargs)  # a fresh instance, never one another process left running
