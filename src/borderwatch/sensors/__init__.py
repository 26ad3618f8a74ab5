"""Parsing and sensor models: a reading becomes a timestamped detection with its uncertainty."""
