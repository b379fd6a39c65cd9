"""Run folders (`folder`: create, resume, lock, manifest), the provenance of an evaluation's metrics.json
(`provenance`), and the file layout of a train run's iterations (`layout`)."""
