"""HTTP routers of the v1 API (DESIGN §6)."""
