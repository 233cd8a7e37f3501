"""gunicorn's settings for the web process, read by the Procfile (`gunicorn -c webapp/gunicorn_conf.py`) and by
everything that runs the web as the Procfile does (scripts/run, the benchmark, the screenshots). Only the
address comes from the command line (--bind).

Processes, not threads, are what add CPU: each process is bound by its own GIL, and the kernel hands a
keep-alive connection to one process for its life, so with few processes one often holds most of the clients
(bench: one of two took 7.3 s of CPU and the other 1.9 s). Four processes of two threads accepted 10-15 %
more events a second than two of four on 2 cores, in each of their runs (bench/RESULTS.md), for ~100 MiB each."""
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "2"))
