"""Passages to an extractive answer: the rules, the reader, and calibrated confidence."""
