"""Observers: streaming statistics of calibration tensors, registered by name.

Each observer module is imported here explicitly so that its ``@register_observer`` runs; these
imports are the list of built-in observers:

* ``minmax``, ``per_channel_minmax``, ``moving_average_minmax``, ``channel_minmax`` (:mod:`.minmax`),
  ``moving_average_per_channel_minmax`` (:mod:`.moving_average_per_channel`);
* on a running histogram (:mod:`.running_histogram`): ``histogram`` (PyTorch's L2 search),
  ``percentile``, ``entropy`` (KL divergence), ``mse``;
* ``fixed_qparams`` (:mod:`.fixed_qparams`).

The table of their arguments and defaults is in ``docs/observers.md``.
"""

from onnxq.calibration.observers.base import (
    Observer,
    check_observer_args,
    make_observer,
    observer_from_state,
    observer_names,
    observer_supports_axis,
    register_observer,
)
from onnxq.calibration.observers.entropy import EntropyObserver
from onnxq.calibration.observers.fixed_qparams import FixedQParamsObserver
from onnxq.calibration.observers.histogram import HistogramObserver
from onnxq.calibration.observers.minmax import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
)
from onnxq.calibration.observers.moving_average_per_channel import MovingAveragePerChannelMinMaxObserver
from onnxq.calibration.observers.mse import MSEObserver
from onnxq.calibration.observers.percentile import PercentileObserver

__all__ = [
    "EntropyObserver",
    "FixedQParamsObserver",
    "HistogramObserver",
    "MSEObserver",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
    "Observer",
    "PerChannelMinMaxObserver",
    "PercentileObserver",
    "check_observer_args",
    "make_observer",
    "observer_from_state",
    "observer_names",
    "observer_supports_axis",
    "register_observer",
]
