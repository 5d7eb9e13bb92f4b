"""YAML that refuses a key given twice in one mapping (``safe_load`` keeps the last one silently).

Every file a user writes by hand (space files, spec files) is read this way, so a repeated key is an error
naming its line, never a setting that quietly overrides another (README, "A tour of the CLI").
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A mapping with the same key twice; the message names the key and both lines."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise DuplicateKeyError(f"duplicate key {key!r} on lines {seen[key]} and {line}")
            if isinstance(key, (str, int, float, bool)):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_unique(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` for a key repeated in one mapping."""
    loader = _UniqueKeyLoader(text)  # what yaml's own loading function does, with this SafeLoader subclass
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
