"""Observers: streaming statistics of calibration tensors, registered by name.

Each observer module is imported here explicitly so that its ``@register_observer`` runs:
``minmax``, ``per_channel_minmax``, ``moving_average_minmax`` (:mod:`.minmax`) and
``histogram`` (:mod:`.histogram`).
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
from onnxq.calibration.observers.percentile import PercentileObserver

__all__ = [
    "EntropyObserver",
    "FixedQParamsObserver",
    "HistogramObserver",
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
