"""The one place the version lives (setup.py, the package and the status banner read it)."""
VERSION = "0.1.0"
