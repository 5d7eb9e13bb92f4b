"""Start a local Ray instance that listens on loopback only.

By default Ray takes the machine's network address as its node address even for a one-machine
instance. For a local search nothing needs to be reachable from elsewhere, so we keep Ray on
127.0.0.1 (Ray's own switch for this is ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which makes it use the
loopback address; set here for this process and the workers it starts). Joining a real cluster with
``--address`` does not go through here and keeps Ray's normal behaviour.
"""

from __future__ import annotations

import os
from typing import Any

import ray


def init_local_ray(**kwargs: Any) -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time by Ray's node-address lookup
    ray.init(address="local", **kwargs)  # a fresh instance, never one another process left running
