"""Dashboard pages: agents."""
