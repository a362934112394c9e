"""Flash models, one per module, each registered under its `impl:` name."""
from memsim.flash.base import FLASH_MODELS, FlashModel
from memsim.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["FLASH_MODELS", "FlashModel"]
