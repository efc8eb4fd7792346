"""``python -m aiide_kernel.image``: build the kernel image if needed, print its tag."""

from __future__ import annotations

import argparse
import sys

from . import ImageBuildError, ensure_image, prune_old_images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiide_kernel.image",
        description="Build the Docker image sandboxed kernels run in (only when its "
        "inputs changed) and print its tag.",
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="build even if the image exists (e.g. for Debian updates)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--prune", action="store_true", help="then remove aiide-kernel images with other tags"
    )
    args = parser.parse_args(argv)
    try:
        from . import _connect

        client = _connect()
        tag = ensure_image(client, progress=not args.quiet, rebuild=args.rebuild)
        if args.prune:
            for ref in prune_old_images(client):
                if not args.quiet:
                    print(f"removed {ref}", file=sys.stderr)
    except ImageBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
