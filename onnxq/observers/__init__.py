"""Observers: streaming statistics of calibration tensors, registered by name."""

from onnxq.observers.base import Observer, make_observer, observer_names, register_observer

__all__ = ["Observer", "make_observer", "observer_names", "register_observer"]
