"""Multi-objective search with predictors (capability 4): spaces, a resumable store,
Pareto tools, random / NSGA-II / LINAS, and a runner that measures in worker processes."""
