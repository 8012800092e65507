"""Services above the targets: the run lifecycle, scheduling, cluster submission."""
