"""Typed settings (pydantic) for trackers, scenarios, nodes and the centre."""
