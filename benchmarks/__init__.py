"""Benchmarks and evaluation data. They talk to the service over HTTP like any client."""
