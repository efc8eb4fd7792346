"""``jupyter aiide``: check the sandbox, build the kernel image, run agents headless."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console


def _check(args: argparse.Namespace) -> int:
    from aiide_kernel.policy import SandboxPolicy

    from .status import StatusService

    service = StatusService(
        args.backend or SandboxPolicy().backend, ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
    )
    status = service.status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        console = Console()
        sandbox = status["sandbox"]
        for name, b in sandbox["backends"].items():
            mark = "[green]ok[/]" if b["available"] else "[red]unavailable[/]"
            console.print(f"sandbox backend {name}: {mark} - {b['detail']}")
            if b["fix"]:
                console.print(f"    to fix: [bold]{b['fix']}[/]")
        limits = sandbox["limits"]
        mark = "[green]enforced[/]" if limits["enforced"] else "[yellow]not enforced[/]"
        console.print(f"resource limits: {mark} - {limits['detail']}")
        if not status["model"]["configured"]:
            console.print(f"[yellow]model:[/] {status['model']['help']}")
    chosen = status["sandbox"]["backends"][status["sandbox"]["default_backend"]]
    return 0 if chosen["available"] else 1


def _image_build(args: argparse.Namespace) -> int:
    from aiide_kernel.image import ImageBuildError, ensure_image

    try:
        tag = ensure_image(progress=not args.quiet, rebuild=args.rebuild)
    except ImageBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(tag)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jupyter aiide", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from .gateway.cli import register_cli as register_gateway_cli

    register_gateway_cli(sub)
    from .knowledge.model_install import register_cli as register_models_cli

    register_models_cli(sub)
    from .headless.cli import register_cli as register_headless_cli

    register_headless_cli(sub)
    from .examples import register_cli as register_example_cli

    register_example_cli(sub)
    from .mcp.stdio import register_cli as register_mcp_cli

    register_mcp_cli(sub)
    check = sub.add_parser("check", help="is a sandbox backend usable here? how to fix it")
    check.add_argument("--backend", choices=["bwrap", "docker"])
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=_check)
    image = sub.add_parser("image", help="the Docker kernel image")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    build = image_sub.add_parser("build", help="build the image if its inputs changed")
    build.add_argument("--rebuild", action="store_true")
    build.add_argument("--quiet", action="store_true")
    build.set_defaults(func=_image_build)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
