"""gunicorn settings for the crash test: import the app's modules in the master, before the workers fork.

Each restart then costs one import of Flask, SQLAlchemy and the app instead of three (the master
and two workers); the app itself (`create_app()`: pools, sweeper thread) is still built in each
worker after the fork, as without this file.
"""

import app  # noqa: F401
