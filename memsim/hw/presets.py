"""Named sections kept as YAML files in a presets folder (hw_configs/thermal/,
hw_configs/background/): a name in a hardware file is replaced by the file's mapping."""
from __future__ import annotations

from pathlib import Path

from memsim.core.errors import ConfigError
from memsim.core.strict_yaml import read_yaml


def preset_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def preset_mapping(folder: Path, name: str, kind: str, *, source: str, key_path: str,
                   also: str = "") -> dict:
    """The mapping of preset `name` in `folder`; an unknown name is an error listing the
    known ones (and `also`: other values the key takes)."""
    if name not in preset_names(folder):
        raise ConfigError(f"no {kind} preset {name!r}", source=source, key_path=key_path,
                          allowed=", ".join(filter(None, [also, *preset_names(folder)]))
                          + ", or a mapping")
    return read_yaml(folder / f"{name}.yaml", what=f"{kind} preset")
