"""Serving the sentiment model: the FastAPI app, micro-batching and the drift monitor (Unit 13)."""
