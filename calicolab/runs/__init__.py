"""Whole runs: the lifecycle's stages, the verify stage's test passes (one e2e folder each),
the version matrix, soak and bench. May import every layer below it."""
