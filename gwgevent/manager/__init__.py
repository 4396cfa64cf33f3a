"""The process manager (gunicorn's arbiter is the model): the master owns signals, reaping and
spawning (`arbiter`), a child's life after fork (`child`), the command line (`cli`) and the
launcher (`launcher.run_all`). Workers know nothing of it."""
