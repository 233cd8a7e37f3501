"""The runaway-agent guard in the dashboard: the agents pages' budgets and throttle warnings."""
