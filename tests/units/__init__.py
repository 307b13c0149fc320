"""One module at a time, in memory, against oracles (closed forms, scipy, finite differences, brute force)."""
