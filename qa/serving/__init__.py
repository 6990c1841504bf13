"""The HTTP service: the FastAPI app, its schema, streaming, uploads, MCP, OpenAI,
and the launcher."""
