"""Background jobs run by the RQ worker (see webapp/cli.py: ``flask --app webapp worker``)."""
