"""Dashboard pages: dashboard."""
