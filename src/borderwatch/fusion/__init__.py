"""The fusion core: pure, synchronous, deterministic. No I/O and no wall clock.

Time comes only from the detections' own timestamps. Positions inside the core are metres in a
local east-north-up (ENU) tangent plane; :mod:`borderwatch.fusion.frames` converts to WGS-84.
"""
