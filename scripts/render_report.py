#!/usr/bin/env python
"""Render an ``onnxq compare`` HTML report to PNG with a headless Chromium, for the docs.

The report is self-contained (inline SVG, no scripts, nothing fetched), so a browser with no
network renders it as a user sees it. Chromium comes from the system's packages (Debian:
``apt-get install chromium``); it is never a dependency of onnxq. Without it the script says so
and exits with status 3, so a docs build can skip the picture.

Usage::

    python scripts/render_report.py report.html report.png [--width 1200] [--height 1600]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NO_BROWSER = 3


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def render(html: Path, png: Path, width: int, height: int, browser: str) -> None:
    """Screenshot ``html`` into ``png`` (written to a temporary file in its folder, then renamed)."""
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=png.parent)
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory(prefix="onnxq-render-") as profile:
            subprocess.run(
                [
                    browser,
                    "--headless",
                    "--disable-gpu",
                    "--no-sandbox",  # containers and CI run as root
                    f"--user-data-dir={profile}",
                    f"--window-size={width},{height}",
                    f"--screenshot={tmp}",
                    html.resolve().as_uri(),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        if os.path.getsize(tmp) == 0:
            raise RuntimeError("the browser wrote an empty screenshot")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's file is private; the picture is for everyone
        os.replace(tmp, png)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1600)
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"render_report: {args.html}: not a file", file=sys.stderr)
        return 2
    if args.png.resolve() == args.html.resolve():
        print(f"render_report: {args.png} is the report itself; choose another file", file=sys.stderr)
        return 2
    browser = find_browser()
    if browser is None:
        print(f"render_report: no headless browser found ({', '.join(BROWSERS)})", file=sys.stderr)
        return NO_BROWSER
    try:
        render(args.html, args.png, args.width, args.height, browser)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as e:
        print(f"render_report: {browser} could not render {args.html}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
