"""Synthetic traces calibrated on real ones: measure a trace, regenerate it at another shape.

The room: statistics.py (what is stored), measure.py, latent.py (the process both fitting
and generation run), coactivation.py and token_factor.py (the structure between columns and
between layers and masks), fit.py (calibrate), fit_structure.py, generate.py. Imports
memsim.core and memsim.traces.

No Phi-3-Medium weights can be had here, but throughput only needs masks (issue 5, section 2).
`calibrate` measures, per mask (the Trace fields up / gate / up_rows / down):
  * the per-layer density (mean fraction of columns kept) and its spread over tokens;
  * the per-column activation-frequency profile: sorted frequencies at the relative ranks
    RANK_GRID (dense at both ends, so the few always-on columns survive the quantiles);
  * the reuse-distance histogram: for each use of a column, the tokens until that column is
    used again in the same sequence (log2 bins), plus "never again within the sequence";
  * co-activation, out of sample: the phi coefficient, on held-out tokens, of each column's
    r-th best partner chosen on other tokens (coactivation.py);
  * the per-token novelty (share of a token's kept columns its predecessor did not keep):
    its spread, and its correlation between layers and between a layer's masks;
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

Two refinements keep each column's own process as it is and add structure
between columns (issue 12):
  * co-activation: every draw of u, a and eps is a sum of the column's own normal and its
    nested groups' (groups of 4, 16, 64, ... columns, loadings g_k per layer), so columns of
    a group fire together; fitted to the partner curve by simulation (coactivation.py);
  * the token factor: token t's persistence is rho_{t,l} = tanh(atanh(rho) + delta zeta),
    zeta shared by the layer's masks and correlated over depth (token_factor.py); fitted
    to the spread of the per-token novelty and its correlation between layers.

Mapping to another model: target layer l sits at relative depth l / (L' - 1) and reads the
source's statistics there, interpolating linearly between the two nearest source layers
(densities, frequency quantiles, rho, w, v); target columns read the frequency quantiles at
their relative rank, and ranks are dealt to columns at random. The reuse statistic is one of
a column population, not of a width, which is why the fit carries over to wider layers.
Co-activation groups keep their size in columns (a wider layer has more groups, not larger
ones); the token factor's layer correlation is kept per relative depth. The synthetic model
(ranks, groups, where each column sits in model order) is drawn from `structure_seed`, the
text from `seed`: a layout built on one seed's trace applies to another seed's.

What the model ignores: co-activation across layers and across masks (the token factor is
the only link); any link between a column's group and its frequency; a column's place in
model order (groups are scattered, as in a real checkpoint, so only a layout finds them);
reuse patterns that three numbers per layer cannot express (DIP-CA's masks are shaped by the
cache itself). docs/calibrated_traces.md has the fidelity table on real traces.
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
