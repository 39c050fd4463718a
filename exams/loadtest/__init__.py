"""``manage.py loadtest``: N simulated candidates stream webcam frames to a
running server while proctor sockets listen, and the run reports what the
server kept up with.

- ``frames``: the pictures (pools of distinct noisy JPEGs per scene) and the
  scripted episodes; no Django.
- ``data``: the load exam, its in-progress candidates and its proctor, written
  straight to the server's database, and their exact removal.
- ``runner``: the websockets, on one asyncio loop, with no database access.
- ``cpu``: the server processes' CPU time from /proc.
- ``report``: the result dict and its text form; ``plot``: the capacity chart.
- ``harness``: one run from start to end.
"""
