"""Detections inside the fusion core: a struct of arrays, one row per detection.

A detection carries its own measurement model (what it measures and with what noise), so the
core never guesses which sensor produced a number:

``POSITION``
    ``z = (x_m, y_m)`` in the local ENU frame, ``R`` its 2×2 covariance in m².
``RANGE_BEARING``
    ``z = (range_m, bearing_rad)`` from the sensor position ``sensor_xy``; bearing is measured
    clockwise from north (the nautical convention radars use), ``R`` is 2×2 in (m², rad²).
``BEARING_ONLY``
    ``z = (bearing_rad, nan)`` from ``sensor_xy``; only ``R[0, 0]`` (rad²) is used.

Each row may also carry an *identity*: 0 for anonymous sensors (radar, camera), the MMSI for
an AIS position report, which names the vessel that made it (see ``docs/fusion.md``, section
"Identities, own boats and dark boats").

The pydantic wire message (:class:`borderwatch.schema.Detection`) converts to this batch at the
boundary; the hot path never sees per-detection Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Self

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


class MeasurementKind(IntEnum):
    """What a detection measures; the integer is stored in :attr:`DetectionBatch.kind`."""

    POSITION = 0
    RANGE_BEARING = 1
    BEARING_ONLY = 2


class TargetClass(IntEnum):
    """Class hint carried by a detection or a track."""

    UNKNOWN = 0
    PERSON = 1
    BOAT = 2
    VEHICLE = 3


@dataclass(frozen=True, slots=True)
class DetectionBatch:
    """Detections as parallel numpy arrays (length ``n``).

    Attributes:
        t: measurement time, seconds (float64) on the scenario/deployment time axis.
        kind: :class:`MeasurementKind` per row (int64).
        z: measurement vector, shape ``(n, 2)``; see the module docstring for its meaning.
        R: measurement noise covariance, shape ``(n, 2, 2)``.
        sensor_xy: sensor position in local ENU metres at time ``t``, shape ``(n, 2)``;
            zeros for ``POSITION`` detections.
        sensor: index of the sensor in the caller's sensor table (int64), for provenance.
        cls: :class:`TargetClass` hint per row (int64).
        cls_conf: confidence of the class hint in [0, 1].
        identity: who the detection says it is (int64): 0 anonymous (radar, camera), an AIS
            report's MMSI otherwise. Defaults to zeros, like ``cls``.
    """

    t: FloatArray
    kind: IntArray
    z: FloatArray
    R: FloatArray
    sensor_xy: FloatArray
    sensor: IntArray
    cls: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cls_conf: FloatArray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    identity: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = self.t.shape[0]
        if self.cls.shape[0] != n:
            object.__setattr__(self, "cls", np.zeros(n, dtype=np.int64))
        if self.cls_conf.shape[0] != n:
            object.__setattr__(self, "cls_conf", np.zeros(n, dtype=np.float64))
        if self.identity.shape[0] != n:
            object.__setattr__(self, "identity", np.zeros(n, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @classmethod
    def empty(cls) -> Self:
        """A batch with no detections."""
        return cls.positions(np.zeros(0), np.zeros((0, 2)), np.zeros(0))

    @classmethod
    def positions(
        cls,
        t: FloatArray,
        xy: FloatArray,
        sigma_m: FloatArray,
        sensor: IntArray | None = None,
        identity: IntArray | None = None,
    ) -> Self:
        """Position detections with isotropic noise ``sigma_m`` (1-σ, metres) per row;
        ``identity`` per row (0 anonymous, the default)."""
        n = int(np.shape(t)[0])
        sigma = np.asarray(sigma_m, dtype=np.float64)
        # Keep the sign: a negative sigma must fail validation, not square into a valid one.
        s2 = sigma * np.abs(sigma)
        R = np.zeros((n, 2, 2))
        R[:, 0, 0] = s2
        R[:, 1, 1] = s2
        return cls(
            t=np.asarray(t, dtype=np.float64),
            kind=np.full(n, MeasurementKind.POSITION, dtype=np.int64),
            z=np.asarray(xy, dtype=np.float64).reshape(n, 2),
            R=R,
            sensor_xy=np.zeros((n, 2)),
            sensor=np.zeros(n, dtype=np.int64) if sensor is None else np.asarray(sensor),
            identity=(
                np.zeros(n, dtype=np.int64)
                if identity is None
                else np.asarray(identity, dtype=np.int64)
            ),
        )

    def take(self, index: IntArray | NDArray[np.bool_]) -> Self:
        """The rows selected by an index or boolean mask, as a new batch."""
        return type(self)(
            t=self.t[index],
            kind=self.kind[index],
            z=self.z[index],
            R=self.R[index],
            sensor_xy=self.sensor_xy[index],
            sensor=self.sensor[index],
            cls=self.cls[index],
            cls_conf=self.cls_conf[index],
            identity=self.identity[index],
        )

    @classmethod
    def concat(cls, batches: list[Self]) -> Self:
        """All rows of several batches, in the given order."""
        if not batches:
            return cls.empty()
        return cls(
            t=np.concatenate([b.t for b in batches]),
            kind=np.concatenate([b.kind for b in batches]),
            z=np.concatenate([b.z for b in batches]),
            R=np.concatenate([b.R for b in batches]),
            sensor_xy=np.concatenate([b.sensor_xy for b in batches]),
            sensor=np.concatenate([b.sensor for b in batches]),
            cls=np.concatenate([b.cls for b in batches]),
            cls_conf=np.concatenate([b.cls_conf for b in batches]),
            identity=np.concatenate([b.identity for b in batches]),
        )
