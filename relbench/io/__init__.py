"""What everything else stands on: atomic writes, locks, streamed JSON, safetensors headers,
file digests and code identity. Imports nothing of relbench but its errors."""
