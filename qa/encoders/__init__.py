"""Text to vectors: the embedder and its runtimes, micro-batching, and Ray."""
