"""Named architectures from the two papers (docs/architecture.md; the papers' names), and resolving "catalog name or spec file".

Names: ``r3d-18`` ... ``r2plus1d-152`` (plain backbones, bottleneck expansion 4);
``srtg-{conv}-{depth}-{placement}`` (SRTG at every valid placement on depth 34 and 50, ``final`` on every
depth; depth >= 50 uses expansion 1 as the authors' released models did); ``mtnet-{depth}`` (r = 0.875,
g = 1), ``mtnet-64-g8``, ``mtnet-132-g8`` and the ratio ablation ``mtnet-64-r{ratio}`` of MTNet Table 2.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from space.spec import (
    RESNET_CONVS,
    RESNET_DEPTHS,
    SIMPLE_BLOCK_PLACEMENTS,
    SRTG_PLACEMENTS,
    ArchSpec,
    MTNetSpec,
    ResNet3DSpec,
    SpecError,
    SRTGSpec,
    load_spec_file,
)

__all__ = ["CATALOG", "catalog_names", "catalog_spec", "resolve_spec"]


def _resnet_entries() -> dict[str, ArchSpec]:
    entries: dict[str, ArchSpec] = {}
    for conv in RESNET_CONVS:
        for depth in RESNET_DEPTHS:
            entries[f"{conv}-{depth}"] = ResNet3DSpec(conv=conv, depth=depth)
    for conv in RESNET_CONVS:
        for depth in RESNET_DEPTHS:
            simple = depth in (18, 34)
            valid = SIMPLE_BLOCK_PLACEMENTS if simple else SRTG_PLACEMENTS
            placements = [p for p in valid if p != "none"] if depth in (34, 50) else ["final"]
            for placement in placements:
                entries[f"srtg-{conv}-{depth}-{placement}"] = ResNet3DSpec(
                    conv=conv,
                    depth=depth,
                    bottleneck_expansion=4 if simple else 1,
                    srtg=SRTGSpec(placement=placement),
                )
    return entries


def _mtnet_entries() -> dict[str, ArchSpec]:
    entries: dict[str, ArchSpec] = {}
    for depth in (32, 48, 64, 132, 200):
        entries[f"mtnet-{depth}"] = MTNetSpec(depth=depth)
    for depth in (64, 132):
        entries[f"mtnet-{depth}-g8"] = MTNetSpec(depth=depth, substreams=8)
    for ratio in ("0.5", "0.625", "0.75", "1.0"):  # 0.875 is mtnet-64 itself
        entries[f"mtnet-64-r{ratio}"] = MTNetSpec(depth=64, ratio=float(ratio))
    return entries


CATALOG: dict[str, ArchSpec] = {**_resnet_entries(), **_mtnet_entries()}


def catalog_names() -> list[str]:
    return list(CATALOG)


def catalog_spec(name: str) -> ArchSpec:
    """The spec named ``name``; an unknown name raises :class:`SpecError` with the closest names."""
    try:
        return CATALOG[name]
    except KeyError:
        close = difflib.get_close_matches(name, CATALOG, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `nas catalog` for the names"
        raise SpecError(f"unknown architecture {name!r}{hint}") from None


def resolve_spec(text: str) -> ArchSpec:
    """A catalog name or a path to a YAML/JSON spec file (``RUN_DIR:TRIAL_ID`` is resolved in ``nas``)."""
    if text in CATALOG:
        return CATALOG[text]
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise SpecError(f"spec file {text!r} does not exist")
        return load_spec_file(path)
    return catalog_spec(text)
