"""The agent: model providers, streaming chat over WebSocket, notebook tools under a
risk-based approval policy, and runs that survive restarts (docs/protocol.md, docs/agent.md)."""
