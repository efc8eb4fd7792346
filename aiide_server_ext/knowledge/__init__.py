"""Knowledge: a per-user chromadb index of the workspace's notebooks and files.

Nothing heavy is imported here: chromadb and onnxruntime load on first use.
"""
