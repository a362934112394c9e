"""What docs/results.md quotes from elsewhere, each figure with where it comes from, and how
it names the hardware and models the run used (read from their configs).

Quoted figures are data here, not template text: a section writes them through `quote()` or
`cite()`, which say where they come from (tests/test_generated_docs.py checks that no number
is typed in a template).
"""
from __future__ import annotations

from dataclasses import dataclass

from memsim.hw.config import HardwareConfig
from memsim.traces.model_shape import ModelShape


@dataclass(frozen=True)
class Source:
    """A document and the section of it a figure comes from."""

    doc: str
    section: int | None = None

    def cite(self) -> str:
        return self.doc + (f" section {self.section}" if self.section is not None else "")


@dataclass(frozen=True)
class Paper:
    authors: str
    title: str
    venue: str
    year: int
    summary: Source  # where this project summarises it

    def cite(self) -> str:
        return f"{self.authors}, *{self.title}*, {self.venue} {self.year}"


PAPER = Paper("Federici et al.", "Efficient LLM Inference using Dynamic Input Pruning and "
              "Cache-Aware Masking", "MLSys", 2025, Source("PAPER.md"))
# The paper's headline (PAPER.md section 4): on Phi-3-Medium, DIP vs streaming the dense model
HEADLINE_SOURCE = Source("PAPER.md", 4)
HEADLINE = {"memory_saved": 0.46, "throughput_gain": 0.40, "perplexity_loss": 0.1}
CLAIMS_SOURCE = Source("PAPER.md", 3)  # the methods and what the paper claims for them
PAPER_MODELS = ("phi-3-mini", "phi-3-medium")  # memsim's shapes of the paper's Phi-3 models


def headline_text() -> str:
    """"46% less memory and +40% throughput at under 0.1 perplexity loss (PAPER.md ...)"."""
    h = HEADLINE
    return (f"{h['memory_saved']:.0%} less memory and {h['throughput_gain']:+.0%} throughput "
            f"than streaming the dense model from flash, at under {h['perplexity_loss']:g} "
            f"perplexity loss ({HEADLINE_SOURCE.cite()})")


def hardware_text(hw: HardwareConfig) -> str:
    """The preset as its config describes it, with the figures that price a read."""
    flash = hw.flash
    parts = [f"DRAM {hw.dram.read_bandwidth_GBps:g} GB/s",
             f"{flash.impl} flash {flash.read_bandwidth_GBps:g} GB/s"]
    if getattr(flash, "page_size_KiB", None):
        parts.append(f"{flash.page_size_KiB:g} KiB pages")
    if flash.latency_us:
        parts.append(f"{flash.latency_us:g} us per request")
    if getattr(flash, "max_read_iops_K", None):
        parts.append(f"{flash.max_read_iops_K:g} K IOPS")
    return f"{hw.name}: {hw.description.rstrip('.')}; " + ", ".join(parts)


def shape_text(model: ModelShape) -> str:
    """"40 layers, H=5120, I=17920"."""
    return (f"{model.num_hidden_layers} layers, H={model.hidden_size}, "
            f"I={model.intermediate_size}")


def billions(params: float) -> str:
    return f"{params / 1e9:.2g}B"
