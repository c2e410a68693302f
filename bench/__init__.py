"""siyu's benchmarks: each measures against a baseline taken in the same run (see docs/benchmarks.md)."""
