"""pykka actors of the master: the quorum gate, one link per secondary, the heartbeat monitor.

Actors never do network I/O on their own thread: blocking calls run on `Worker` threads that report
back with `tell`, and timers only `tell`.
"""
