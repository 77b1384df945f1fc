"""Studies: tasks, the training engine, specs, sweeps, recording, statistics and reports."""
