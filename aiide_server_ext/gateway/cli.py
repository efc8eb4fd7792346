"""``jupyter aiide token create``: issue a token without a running server.

Reads ``c.Gateway.*`` from the same config files as the server and signs with
the same secret (config, AIIDE_JWT_SECRET or the generated file under the
Jupyter data directory), so the token works against that server. Issuing is
audited with the system user as actor.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Any

from traitlets import Unicode
from traitlets.config import Config

if TYPE_CHECKING:
    from aiide_server_ext.stores.conn import Conn


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = subparsers.add_parser("token", help="gateway access tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="issue an access token for a user")
    create.add_argument("--user", required=True, help="the token's subject")
    create.add_argument(
        "--scopes",
        default="*",
        help="space- or comma-separated scopes (default '*': whatever the user's roles allow)",
    )
    create.add_argument(
        "--ttl", type=float, default=None, help="lifetime in seconds (c.Gateway.access_token_ttl)"
    )
    create.add_argument("--refresh", action="store_true", help="also issue a refresh token")
    create.add_argument("--json", action="store_true", help="print the whole JSON response")
    create.add_argument("--config", default=None, help="a jupyter_server_config file to read")
    create.set_defaults(func=token_create)


def server_config(path: str | None = None) -> Config:
    """The config a ``jupyter server`` started here would read (plus aiide's own file)."""
    from jupyter_core.application import JupyterApp

    class ServerConfig(JupyterApp):  # type: ignore[misc]
        name = "jupyter-server"
        config_file_name = Unicode("jupyter_server_config")

    app = ServerConfig()
    if path:
        app.config_file = path
    app.load_config_file(suppress_errors=False)
    extension = ServerConfig()
    extension.config_file_name = "jupyter_aiide_server_ext_config"
    extension.load_config_file(suppress_errors=False)
    merged = Config()
    merged.merge(extension.config)
    merged.merge(app.config)
    return merged


def token_create(args: argparse.Namespace) -> int:
    from ..stores.errors import StoreError
    from .build import build_gate
    from .errors import GatewayError
    from .part import Gateway
    from .scopes import parse_scopes

    part = Gateway(config=server_config(args.config))
    gate = build_gate(part, part._data_dir())
    actor = f"cli:{getpass.getuser()}"
    try:
        scopes = parse_scopes(args.scopes)
        ttl = gate.tokens.ttl(args.ttl)

        def issue(c: Conn) -> dict[str, Any]:
            out = gate.tokens.issue_in(c, args.user, scopes, ttl=ttl, refresh=args.refresh)
            gate.audit_log.append(
                c,
                actor,
                "token.issued",
                f"user:{args.user}",
                "issued",
                {"via": "cli", "scopes": sorted(scopes), "ttl": ttl, "refresh": args.refresh},
            )
            return out

        result = gate.store.write(issue)
    except (GatewayError, StoreError) as e:
        print(f"error: {e.message} ({e.code})", file=sys.stderr)
        return 2
    finally:
        gate.store.close()
    print(json.dumps(result, indent=2) if args.json else result["access_token"])
    return 0
