"""The web console: the live picture of a node or the centre, served by the service itself
over HTTP and a WebSocket (``docs/console.md``)."""
