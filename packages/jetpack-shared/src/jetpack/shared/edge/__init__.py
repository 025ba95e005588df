"""Build, run and talk to the Jetpack Worker (the edge backends' server).

Stdlib only at import time; the HTTP client needs ``jetpack-shared[edge]``.
"""
