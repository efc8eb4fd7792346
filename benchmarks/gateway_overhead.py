"""What the gateway costs per request: GET /aiide/api/status with and without it.

Two real ``jupyter server`` processes run side by side in one go:

- baseline: ``c.Gateway.enabled = False`` and Jupyter's own identity provider and
  authorizer, authenticated with the Jupyter token;
- gateway: the gateway's identity provider and authorizer (installed through the
  extension's config file, as a user would get them), the route guard checking every
  route against the route table (checked on: the JWT is refused ``/api/contents``), a
  Bearer JWT for a non-owner user, and a sliding-window rate limit on the status
  route's class; also measured there: the owner with the Jupyter token.

Requests rotate between the clients on keep-alive connections, so drift
on the machine hits both alike. Prints p50/p99 for each, the servers' CPU time per
request (from /proc: what a request costs, steadier than latency on a loaded machine)
and the ratios (target: at most 1.05x at p50).

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 3000] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import JupyterServer, running

SECRET = "benchmark-secret-" + "0123456789abcdef" * 3
PATH = "/aiide/api/status"
HOOKS = {
    "ServerApp": {
        "identity_provider_class": "aiide_server_ext.gateway.identity.GatewayIdentityProvider",
        "authorizer_class": "aiide_server_ext.gateway.authorizer.GatewayAuthorizer",
    }
}


def token() -> str:
    import jwt

    now = int(time.time())
    claims = {
        "iss": "aiide",
        "aud": "aiide",
        "sub": "bench",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "bench",
        "typ": "access",
        "scopes": ["chat"],
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux): what a request costs the
    server, far less sensitive to a loaded machine than latency."""
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    def __init__(self, url: str, authorization: str, pid: int = 0) -> None:
        parsed = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(
            parsed.hostname or "127.0.0.1", parsed.port, timeout=30
        )
        self.headers = {"Authorization": authorization}
        self.samples: list[float] = []
        self.pid = pid
        self.cpu_us = 0.0  # server CPU per measured request

    def get(self, record: bool = True) -> http.client.HTTPResponse:
        start = time.perf_counter()
        self.conn.request("GET", PATH, headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"{PATH}: HTTP {response.status}")
        if record:
            self.samples.append(elapsed * 1000)
        return response

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(plain: Client, gated: Client, requests: int, warmup: int) -> tuple[Client, Client]:
    """Alternate (and alternate who goes first) so both servers see the same load."""
    for _ in range(warmup):
        plain.get(record=False)
        gated.get(record=False)
    if "Bearer" in gated.headers["Authorization"]:
        limit = gated.get(record=False).getheader("X-RateLimit-Limit")
        assert limit == "10000000", "the gateway server must rate-limit the status route"
        # The route-by-route check is on: the same JWT (scope 'chat') may not list files.
        gated.conn.request("GET", "/api/contents", headers=gated.headers)
        refused = gated.conn.getresponse()
        body = json.loads(refused.read())
        assert (refused.status, body.get("code")) == (403, "insufficient_scope"), body
    cpu = [cpu_seconds(c.pid) for c in (plain, gated)]
    for i in range(requests):
        first, second = (plain, gated) if i % 2 else (gated, plain)
        first.get()
        second.get()
    for client, before in zip((plain, gated), cpu, strict=True):
        client.cpu_us = (cpu_seconds(client.pid) - before) / requests * 1e6
    return plain, gated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per server")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    baseline = JupyterServer({"Gateway": {"enabled": False}})
    gateway = JupyterServer(
        {
            "Gateway": {
                "signing_secret": SECRET,
                "resource_route_classes": {"aiide": "api"},
                "rate_limits": {"api": "10000000/minute"},
            }
        },
        files={"jupyter_aiide_server_ext_config.json": HOOKS},
    )
    with running(baseline, gateway):
        jwt_pair = measure(
            Client(baseline.url, f"token {baseline.token}", baseline.proc.pid),
            Client(gateway.url, f"Bearer {token()}", gateway.proc.pid),
            args.requests,
            args.warmup,
        )
        owner_pair = measure(
            Client(baseline.url, f"token {baseline.token}", baseline.proc.pid),
            Client(gateway.url, f"token {gateway.token}", gateway.proc.pid),
            args.requests,
            args.warmup,
        )
    result: dict[str, float] = {"requests": args.requests}
    for name, (plain, gated) in (("jwt", jwt_pair), ("owner", owner_pair)):
        for side, client in (("baseline", plain), ("gateway", gated)):
            for q in (50, 99):
                result[f"{name}_{side}_p{q}_ms"] = round(client.percentile(q / 100), 3)
            result[f"{name}_{side}_cpu_us"] = round(client.cpu_us, 1)
        for q in (50, 99):
            result[f"{name}_ratio_p{q}"] = round(
                result[f"{name}_gateway_p{q}_ms"] / result[f"{name}_baseline_p{q}_ms"], 3
            )
        result[f"{name}_ratio_cpu"] = round(
            result[f"{name}_gateway_cpu_us"] / result[f"{name}_baseline_cpu_us"], 3
        )
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"GET {PATH}: {args.requests} requests per server and pass, alternating")
    print(f"{'':34}{'p50 ms':>9}{'p99 ms':>9}{'server CPU us':>15}")
    for name, label in (("jwt", "Bearer JWT + rate limit"), ("owner", "owner's Jupyter token")):
        for side, text in (("baseline", "without gateway (Jupyter token)"), ("gateway", label)):
            p50, p99 = result[f"{name}_{side}_p50_ms"], result[f"{name}_{side}_p99_ms"]
            cpu = result[f"{name}_{side}_cpu_us"]
            print(f"{text:34}{p50:>9.3f}{p99:>9.3f}{cpu:>15.1f}")
        ratio50, ratio99 = result[f"{name}_ratio_p50"], result[f"{name}_ratio_p99"]
        ratio_cpu = result[f"{name}_ratio_cpu"]
        print(
            f"{'  ratio':34}{ratio50:>8.3f}x{ratio99:>8.3f}x{ratio_cpu:>14.3f}x"
            "   (target p50 <= 1.05x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
