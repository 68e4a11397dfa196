"""``python -m onnxq``: the same command line as the ``onnxq`` console script."""

from onnxq.cli import main

raise SystemExit(main())
