"""Documents in: loaders for each format, OCR, chunking, and where a passage lies in its source."""
