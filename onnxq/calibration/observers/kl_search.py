"""Threshold search minimising the KL divergence of 8-bit quantization (TensorRT's entropy
calibration, as onnxruntime's ``HistogramCollector.get_entropy_threshold`` defines it).

The histogram has ``B`` bins over ``[-T, T]``, ``z = B // 2`` the bin where zero lies. Candidate
``i`` (``Q // 2 <= i <= z``, ``Q`` the quantized bins) keeps bins ``s = z - i`` to
``e = min(z + i + 1, B)`` (exclusive), ``L = e - s`` of them, ``m = L // Q`` per quantized bin:

* the reference ``p``: the kept bins, with everything left of them added to the first and
  everything right of them to the last (clipping);
* the candidate ``q``: the kept bins (without the outliers) summed in groups of ``m``, the
  remainder going to the last group; each group's sum ``S_g`` is spread back as
  ``floor(S_g / n_g)`` over all ``m`` positions of the group, ``n_g`` the group's non-zero
  ``p`` entries (0 when ``n_g = 0``; the ``L - Q m`` remainder positions keep 0);
* both smoothed: zeros become ``eps = 1e-4``, the ``n`` non-zeros lose ``eps * zeros / n``;
* ``KL(p || q) = sum_j P_j log(P_j / Q_j)`` of the normalised ``P``, ``Q``.

The chosen candidate is the first one of least divergence, equal meaning within float32 resolution
(``TIE_RTOL``): candidates that differ only by empty bins at their ends differ only by the
smoothing's ``eps`` terms, about 1e-7 of the divergence, which onnxruntime, computing in float32,
cannot tell apart, and it takes the first of them. Its range is ``[edge_s, edge_e]``.
The spreading over whole groups in whole counts, and the remainder left at 0, are onnxruntime's
definition and are kept so that the thresholds agree with it. Every candidate is evaluated at
once by the native kernel (:func:`onnxq.kernels.hist.kl_divergences`: a logarithm per kept bin,
about a million per 2048-bin histogram); its numpy reference is
:func:`onnxq.kernels.reference.hist.kl_divergences`.
"""

from __future__ import annotations

import numpy as np

from onnxq.kernels.hist import kl_divergences

#: Divergences this close (relative) to the least count as equal to it: float32 resolution.
TIE_RTOL = 1e-6


def entropy_threshold(hist: np.ndarray, quantized_bins: int) -> tuple[int, int]:
    """The ``(start_bin, end_bin)`` (end exclusive) of the least-divergence candidate."""
    hist = np.asarray(hist, dtype=np.float64)
    bins = hist.size
    z = bins // 2
    kl = kl_divergences(hist, quantized_bins)
    # the first of the least, up to float32 resolution (module docstring)
    i = quantized_bins // 2 + int(np.flatnonzero(kl <= kl.min() * (1 + TIE_RTOL))[0])
    return z - i, min(z + i + 1, bins)
