"""Upgrade rehearsals (marker upgrade): rolling, gated, graded against first principles."""
