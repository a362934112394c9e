"""Foundations every room uses: errors that name the field (errors.py), plug-in registries
(registry.py), the strict YAML-to-dataclass loader (schema.py), atomic file writes (files.py),
the user cache folder and its writer lock (cache_dir.py).

May import: nothing from memsim (the bottom of the stack).
"""
