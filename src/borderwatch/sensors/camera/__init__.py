"""Thermal and night-vision cameras: frames to pixel detections to fusion measurements.

* :mod:`.detect`: the :class:`~.detect.FrameDetector` interface, :class:`~.detect.PixelDetection`,
  frame checks and :func:`~.detect.make_detector`;
* :mod:`.thermal`, :mod:`.nightvision`, :mod:`.dnn`: the detectors;
* :mod:`.classify`: class hints from apparent size at range;
* :mod:`.geometry`: intrinsics, mount and platform pose; pixels to bearings and elevations,
  detections to ``DetectionBatch`` rows.

See ``docs/cameras.md``.
"""
