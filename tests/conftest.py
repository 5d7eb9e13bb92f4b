"""Session-wide test settings.

Ray is kept on loopback: with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` Ray takes 127.0.0.1 as the node
address instead of the machine's network interface, so no test traffic leaves this machine's loopback.
Set before anything imports Ray. Token authentication (Ray's default) stays on.
"""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


# ---- the one Ray fixture ------------------------------------------------------------------------
# A Ray head on loopback (2 CPUs, no dashboard), started once per test session. The test process is
# connected to it (in-process searches and retrains use it), and its address serves `nas ... --address`
# subprocesses. Tests that need Ray take ``ray_address``.

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory):
    """The session's Ray head (``host:port``), with this test process connected to it."""
    import ray

    from tests.nas.search_helpers import start_ray_head, stop_ray_head

    if ray.is_initialized():  # a test without this fixture left its own instance connected
        ray.shutdown()
    address = start_ray_head(tmp_path_factory.mktemp("ray"))
    ray.init(address=address, include_dashboard=False, log_to_driver=False, namespace="videonas",
             configure_logging=False)
    yield address
    ray.shutdown()
    stop_ray_head()
