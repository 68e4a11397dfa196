"""MovingAveragePerChannelMinMaxObserver: PyTorch's per-channel moving average of min and max.

For channel ``c`` along ``axis`` and each update ``x_t`` with a finite value in that channel (NaN/Inf
are ignored and counted)::

    lo_c = min x_1[c]                                  on the channel's first update
    lo_c = lo_c + k (min x_t[c] - lo_c)                afterwards, k = averaging_constant (0.01)

and the same for ``hi_c``, as ``torch.ao.quantization.MovingAveragePerChannelMinMaxObserver``. The
statistics are those of :class:`~onnxq.calibration.observers.minmax.MovingAverageMinMaxObserver` kept
per channel (one implementation serves both; this class only gives PyTorch's name), and so is the
merge: a moving average has no exact merge, so two observers combine into the update-count
weighted mean ``(n_a lo_a + n_b lo_b) / (n_a + n_b)`` of their averages (per channel; a channel
one side never saw takes the other side's value).
"""

from __future__ import annotations

from onnxq.calibration.observers.base import register_observer
from onnxq.calibration.observers.minmax import MovingAverageMinMaxObserver


@register_observer("moving_average_per_channel_minmax")
class MovingAveragePerChannelMinMaxObserver(MovingAverageMinMaxObserver):
    """Moving average of each channel's min and max along ``axis`` (per tensor when it is None)."""

    kind = "moving_average_per_channel_minmax"
