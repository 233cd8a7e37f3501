"""The audit log page: who did what to the tenant's keys, secrets, endpoints and agents."""
