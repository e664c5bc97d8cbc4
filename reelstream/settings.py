"""Loading a tier's frozen config dataclass from defaults, a TOML file and the environment.

Precedence, lowest first: the dataclass defaults, the `[section]` of the TOML file named by
`REELSTREAM_CONFIG`, then environment variables `<PREFIX><FIELD>` (upper case). Values are
converted to the field's declared type, so a typo fails at start-up with a clear message
instead of deep inside the service.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT")

CONFIG_FILE_ENV = "REELSTREAM_CONFIG"


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range."""


def _convert(name: str, raw: object, target: Any) -> object:
    if target is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected a boolean, got {raw!r}")
    if target in (int, float, str):
        try:
            return target(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name}: expected {target.__name__}, got {raw!r}") from exc
    origin = typing.get_origin(target)
    if origin is tuple:
        items = (
            raw
            if isinstance(raw, list | tuple)
            else [part.strip() for part in str(raw).split(",") if part.strip()]
        )
        (item_type, _ellipsis) = typing.get_args(target)
        return tuple(_convert(name, item, item_type) for item in items)
    raise ConfigError(f"{name}: unsupported config type {target!r}")


def load_config(
    cls: type[ConfigT],
    env_prefix: str,
    section: str,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> ConfigT:
    """Builds `cls` from defaults, the TOML file section, the environment and overrides.

    Raises:
        ConfigError: a value cannot be converted, or `cls.validate()` rejects the result.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    config_file = env.get(CONFIG_FILE_ENV)
    if config_file:
        path = Path(config_file)
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{CONFIG_FILE_ENV}={config_file}: {exc}") from exc
        table = document.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{config_file}: [{section}] must be a table")
        values.update(table)
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - fields
    if unknown:
        raise ConfigError(f"[{section}] has unknown keys: {sorted(unknown)}")
    for field_name in fields:
        env_name = f"{env_prefix}{field_name.upper()}"
        if env_name in env:
            values[field_name] = env[env_name]
    if overrides:
        values.update(overrides)
    converted = {
        key: _convert(f"{env_prefix}{key.upper()}", raw, hints[key]) for key, raw in values.items()
    }
    config = cls(**converted)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config
