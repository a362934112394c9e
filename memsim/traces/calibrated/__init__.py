"""Synthetic traces calibrated on real ones: measure a trace, regenerate it at another shape.

The room: statistics.py (what is stored), measure.py, latent.py (the process both fitting
and generation run), fit.py (calibrate), generate.py. Imports memsim.core and memsim.traces.

No Phi-3-Medium weights can be had here, but throughput only needs masks (issue 5, section 2).
`calibrate` measures, per mask (the Trace fields up / gate / up_rows / down):
  * the per-layer density (mean fraction of columns kept) and its spread over tokens;
  * the per-column activation-frequency profile: sorted frequencies at the relative ranks
    RANK_GRID (dense at both ends, so the few always-on columns survive the quantiles);
  * the reuse-distance histogram: for each use of a column, the tokens until that column is
    used again in the same sequence (log2 bins), plus "never again within the sequence";
and fits the generator below to them. `generate` draws masks with those statistics at any
model shape; docs/calibrated_traces.md says what is matched, how well, and what is not.

The generator, a Gaussian copula over tokens. Column i of a layer has the latent score
    z[t, i] = sqrt(v) c[t] + sqrt(1 - v) (sqrt(w) u[s, i] + sqrt(1 - w) a[t, i]),
    a[t] = rho a[t - 1] + sqrt(1 - rho^2) eps[t]            (AR(1) over tokens)
with c (per token, shared by the layer's columns), u (per sequence s and column) and eps
standard normal. z is N(0, 1) at every token, so keeping the column when z > theta_i,
theta_i = Phi^-1(1 - p_i), uses it with probability exactly p_i: any frequency profile is
reproduced whatever the dynamics, which take three numbers per layer:
  rho  token-to-token persistence (short reuse distances), as in memsim/traces/synth.py;
  w    a per-sequence component (context-specific hot columns: long reuse distances, the
       "never" bin, frequencies that differ between sequences). A single AR(1) gives
       geometric gaps; real traces have a heavier tail, which this term supplies;
  v    a per-token shift shared by all columns (how much the count varies per token; 0 for
       top-k sources, whose ranking a common shift cannot change).
Fitting, per layer: v from the measured per-token density spread (quadrature); (rho, w)
minimising the L1 distance between the measured reuse histogram and the generator's,
simulated at the source's sequence lengths over a grid; and the stationary probabilities p,
which are not the measured frequencies: those carry sampling noise (more of it the more
persistent the process), so p is the measured profile shrunk in probit space until the
generator, measured like the source, reproduces the source's profile (`deconvolve_profile`).
Sources that kept exactly k columns per token (DIP and DIP-CA top-k) are generated as the
top-k of z - theta: for wide layers the cut concentrates at 0, so frequencies follow p.

Mapping to another model: target layer l sits at relative depth l / (L' - 1) and reads the
source's statistics there, interpolating linearly between the two nearest source layers
(densities, frequency quantiles, rho, w, v); target columns read the frequency quantiles at
their relative rank, and ranks are dealt to columns at random. The reuse statistic is one of
a column population, not of a width, which is why the fit carries over to wider layers.

What the model ignores: correlations between columns beyond the shared per-token shift
(co-activated feature groups), between layers and between masks (DIP's down mask follows its
up mask; here they are independent), any meaning of column order (runs of adjacent missed
columns, i.e. flash read sizes, are those of scattered columns), and reuse patterns that
three numbers per layer cannot express (DIP-CA's masks are shaped by the cache itself).
"""
from memsim.traces.calibrated.fit import (
                                                 calibrate,
                                                 deconvolve_profile,
                                                 fit_dynamics,
                                                 fit_token_weight,
)
from memsim.traces.calibrated.generate import (
                                                 check_generate_args,
                                                 depth_weights,
                                                 generate,
)
from memsim.traces.calibrated.measure import frequency_profile, reuse_histogram
from memsim.traces.calibrated.statistics import (
                                                 NUM_QUANTILES,
                                                 RANK_GRID,
                                                 REUSE_BIN_EDGES,
                                                 GroupStatistics,
                                                 TraceStatistics,
)

__all__ = ["GroupStatistics", "NUM_QUANTILES", "RANK_GRID", "REUSE_BIN_EDGES", "TraceStatistics",
           "calibrate", "check_generate_args", "deconvolve_profile", "depth_weights",
           "fit_dynamics", "fit_token_weight", "frequency_profile", "generate",
           "reuse_histogram"]
