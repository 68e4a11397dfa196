"""Calibration: run the fp32 model over data, keep streaming statistics, turn them into qparams.

* :mod:`~onnxq.calibration.data` — data sources (.npz files and folders, any iterable of dicts),
  validation against the model's inputs, re-batching;
* :mod:`~onnxq.calibration.engine` — :func:`calibrate`: onnxruntime runs, observers fed;
* :mod:`~onnxq.calibration.result` — :class:`CalibrationResult`: a value (save, load, merge);
* :mod:`~onnxq.calibration.resolve` — observers for a plan, and the plan's quantization parameters
  from a result;
* :mod:`~onnxq.calibration.observers` — one observer per file, registered by name.

Nothing here imports from :mod:`onnxq.passes`. The package's own namespace stays light (the
engine loads onnxruntime): import the modules for the rest.
"""

from onnxq.calibration.result import CalibrationResult

__all__ = ["CalibrationResult"]
