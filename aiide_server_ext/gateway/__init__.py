"""The gateway: who is calling, what they may do, and what it costs.

Identity (JWTs, API keys, Jupyter's own token and cookie), scopes mapped onto
jupyter_server's authorizer, rate limits, usage metering with quotas, and an
append-only audit log. See docs/gateway.md. Modules import their heavy
dependencies (PyJWT/cryptography, redis) on first use, never at server start.
"""
