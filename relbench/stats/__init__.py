"""Intervals and tests: the cluster bootstrap, paired differences, comparisons with published
records, judge agreement. Numbers in, numbers out; no files."""
