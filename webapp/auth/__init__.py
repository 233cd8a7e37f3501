"""Sign-up, log-in and log-out, and who is logged in."""
