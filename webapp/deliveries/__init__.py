"""Dashboard pages: deliveries."""
