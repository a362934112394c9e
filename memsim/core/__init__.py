"""Foundations every room uses: errors that name the field (errors.py), plug-in registries
(registry.py), the strict YAML-to-dataclass loader (schema.py), YAML files read strictly
(strict_yaml.py: a repeated key is an error), files the user names (files.py: atomic writes,
output locations checked before any work, reads that fail naming the file), the user cache
folder and its writer lock (cache_dir.py), compiled kernels (jit.py, bitops.py) and units.

May import: nothing from memsim (the bottom of the stack).
"""
