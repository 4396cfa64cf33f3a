"""The runtime: connections driven by loop watchers, outbound links, TLS, timers and the Worker
base class. It knows protocols (sans-IO codecs) and nothing of the cluster roles or the process
manager above it."""
