"""Build hook: the native kernels are compiled by cffi (API / out-of-line mode)."""

from setuptools import setup

setup(cffi_modules=["onnxq/kernels/_build.py:ffibuilder"])
