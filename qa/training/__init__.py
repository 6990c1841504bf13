"""Training the models qa ships: the reader and the confidence calibrator."""
