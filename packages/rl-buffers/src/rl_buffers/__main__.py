"""``python -m rl_buffers convert --trust FILE [--out OUT]``: make a trusted old file loadable.

:func:`rl_buffers.io.load` refuses files that ask for Python types outside its allowlist
(:class:`rl_buffers.io.UnsafeFileError`). A file you wrote yourself with an older rlworks may
hold such types; this command reads it once with full pickle, which runs any code in it, and
rewrites it with allowed types only (:func:`rl_buffers.io.convert_trusted`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rl_buffers import io


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m rl_buffers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert",
        help="rewrite a trusted rlworks file (checkpoint, buffer) with allowed types only",
        description=(
            "Read FILE with full pickle (this RUNS ANY CODE IN IT: only for files you wrote "
            "yourself) and rewrite it with the types rl_buffers.io.load allows. In place by "
            "default, keeping the original as FILE.orig."
        ),
    )
    convert.add_argument("file", type=Path, help="file written by rl_buffers.io.save")
    convert.add_argument(
        "--trust",
        action="store_true",
        help="confirm that you wrote FILE yourself and that running code from it is acceptable",
    )
    convert.add_argument("--out", type=Path, default=None, help="write here instead of in place")
    args = parser.parse_args(argv)

    if not args.trust:
        print(
            f"refusing to convert {args.file}: converting reads it with full pickle, which runs "
            "any code in it. Pass --trust if you wrote it yourself.",
            file=sys.stderr,
        )
        return 2
    try:
        dest = io.convert_trusted(args.file, out=args.out)
    except (OSError, io.CorruptFileError, io.ConversionError) as e:
        print(f"cannot convert {args.file}: {e}", file=sys.stderr)
        return 1
    kept = f" (original kept as {args.file}.orig)" if args.out is None else ""
    print(f"converted {args.file} -> {dest}{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
