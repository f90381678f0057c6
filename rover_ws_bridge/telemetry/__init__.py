"""What the bridge says about itself. ROS-free, asyncio thread only.

Each component counts its own things (`stats()` where the component has one; sources.py reads
the others); `Telemetry` (reading.py) turns them, once a period, into rates, peaks and the
regression verdict, and on demand into one `Reading`. Small renderers turn a Reading into
/diagnostics statuses and /health (diagnostics.py), Prometheus text (prometheus.py) and the
JSON of the HTTP API (snapshot.py). histogram.py and delivery.py hold the latency histograms
the send loops record into; regression.py compares latency with a baseline taken at the same
load.
"""
