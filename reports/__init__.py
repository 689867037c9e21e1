"""HTML reports built from run directories only (summary.json, samples.csv, manifest.json)."""
