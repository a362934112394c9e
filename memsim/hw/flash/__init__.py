"""Flash models, one per module, each registered under its `impl:` name (part of the
hardware description)."""
from memsim.core.registry import import_submodules
from memsim.hw.flash.base import FLASH_MODELS, FlashModel

import_submodules(__name__, __path__)

__all__ = ["FLASH_MODELS", "FlashModel"]
