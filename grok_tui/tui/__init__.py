"""The Textual front end: `make_app(runs_dir)` in app.py. It never trains and never does tensor math."""
