"""Byte sizes of a model at a hardware config's precision, computed once per simulation."""
from __future__ import annotations

from dataclasses import dataclass

from memsim.hw.config import HardwareConfig
from memsim.traces.model_shape import ModelShape


@dataclass(frozen=True)
class Footprint:
    """What one layer / the whole model occupies and moves, in bytes."""

    attention_bytes_per_layer: float
    mlp_bytes_per_layer: float
    embedding_table_bytes: float
    embedding_row_bytes: float  # read per token: one row of the table
    lm_head_bytes: float
    kv_bytes_per_token_per_layer: float
    mlp_bits: float
    adapter_bytes_per_layer: float  # LoRA weights, spread evenly over layers
    predictor_bytes_per_layer: float = 0.0  # a mask predictor's weights, spread evenly

    @property
    def resident_extra_bytes_per_layer(self) -> float:
        """Adapters and predictor: resident in DRAM and read in full every token."""
        return self.adapter_bytes_per_layer + self.predictor_bytes_per_layer

    @classmethod
    def of(cls, model: ModelShape, hw: HardwareConfig, adapter_params: int = 0,
           predictor_params: int = 0) -> "Footprint":
        p = hw.precision
        return cls(
            attention_bytes_per_layer=model.attention_params_per_layer * p.attention_bits / 8,
            mlp_bytes_per_layer=model.mlp_params_per_layer * p.mlp_bits / 8,
            embedding_table_bytes=model.embedding_params * p.embedding_bits / 8,
            embedding_row_bytes=model.hidden_size * p.embedding_bits / 8,
            lm_head_bytes=model.embedding_params * p.lm_head_bits / 8,
            kv_bytes_per_token_per_layer=model.kv_values_per_token_per_layer * p.kv_cache_bits / 8,
            mlp_bits=p.mlp_bits,
            adapter_bytes_per_layer=adapter_params * p.adapter_bits / 8 / model.num_hidden_layers,
            predictor_bytes_per_layer=(predictor_params * p.predictor_bits / 8
                                       / model.num_hidden_layers))

    def vector_bytes(self, vector_weights: int, num_matrices: int) -> float:
        """Bytes of one cached unit of a mask group (e.g. column j of W_up and of W_gate)."""
        return num_matrices * vector_weights * self.mlp_bits / 8
