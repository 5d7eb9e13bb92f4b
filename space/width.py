"""Channel scaling for proxies (docs/proxy.md)."""


def scale_channels(channels: int, width_mult: float, groups: int = 1) -> int:
    """Scale ``channels`` by ``width_mult``, rounded down to a multiple of ``groups``, at least one group's worth."""
    if width_mult == 1.0:
        return channels
    scaled = int(channels * width_mult) // groups * groups
    return max(scaled, groups)
