"""Transports: bytes and frames in (serial, UDP/TCP, MQTT, cameras). No interpretation here."""
