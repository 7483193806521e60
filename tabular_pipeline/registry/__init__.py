"""Registry: registering versions, the promotion gate, the promotion lock, and lineage tags."""
