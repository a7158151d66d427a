"""Send-side congestion control, pure: no aiortc, no asyncio, no I/O, no clock.

Every function takes the time it should act at (``now_ms``, arrival times in
microseconds) as an argument, so traces replay exactly in unit tests. The aiortc
shell stamps transport sequence numbers, feeds sends and feedback in, and applies
what comes out (encoder targets, pacing, resolution and frame rate).

- :mod:`.twcc`: transport-wide CC feedback packets, parsed, built and recorded;
- :mod:`.estimator`: the GCC-like send-side estimate, combining
  :mod:`.trendline` (inter-arrival groups, trendline, overuse detector),
  :mod:`.rate_control` (AIMD), :mod:`.acknowledged` (the acknowledged bitrate) and
  :mod:`.loss_based` (the loss-based controller);
- :mod:`.pacer`: the pacing budget and the send queue;
- :mod:`.adaptation`: resolution, frame rate and bitrate for a target;
- :mod:`.keyframes`: the keyframe request throttle.
"""
