"""Where an index lives: the interface, the index folder, Milvus, and the manifest."""
