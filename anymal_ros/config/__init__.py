"""Typed, validated configuration (layer 1: imports nothing from the package but the contract's
constants, anymal_ros.contract)."""

from anymal_ros.config.base import (
    ConfigError,
    apply_overrides,
    deep_merge,
    from_dict,
    load_config,
    load_yaml,
    parse_override,
    to_dict,
)

__all__ = [
    "ConfigError",
    "apply_overrides",
    "deep_merge",
    "from_dict",
    "load_config",
    "load_yaml",
    "parse_override",
    "to_dict",
]
