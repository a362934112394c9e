"""Bit operations for compiled kernels (numba intrinsics mapping to single instructions).

`popcount` and `trailing_zeros` of an integer word, usable inside `numba.njit` code only.
They lower straight to LLVM's ctpop / cttz, which keeps the kernels' compile time short
(a hand-written SWAR popcount compiles several times slower).
"""
from __future__ import annotations

from numba.core import errors, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

__all__ = ["popcount", "trailing_zeros"]


@intrinsic
def popcount(typingctx, src):
    """Set bits of an integer word."""
    if not isinstance(src, types.Integer):
        raise errors.NumbaTypeError(f"popcount needs an integer, got {src}")

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return src(src), codegen
