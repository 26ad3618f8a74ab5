"""The asyncio services: edge node and control centre. The only place that reads the wall clock."""
