"""Coordinate frames: WGS-84 at every boundary, a local ENU tangent plane inside fusion.

The origin of the local plane is part of the deployment (or scenario) configuration; pymap3d does
the geodesy. Within the tens of kilometres a node watches, the flat ENU plane is accurate to
centimetres, far below sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymap3d

from borderwatch.fusion.detections import FloatArray


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """An east-north-up tangent plane at a WGS-84 origin (degrees, metres above ellipsoid)."""

    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0

    def to_enu(
        self, lat_deg: FloatArray, lon_deg: FloatArray, alt_m: FloatArray | float | None = None
    ) -> FloatArray:
        """WGS-84 → local east/north metres, shape ``(n, 2)`` (the up component is dropped).

        ``alt_m`` defaults to the origin's altitude: points given without a height are taken to
        lie on the tangent plane, not on the ellipsoid (which would shrink them by alt/R).
        """
        e, n, _u = pymap3d.geodetic2enu(
            np.asarray(lat_deg, dtype=np.float64),
            np.asarray(lon_deg, dtype=np.float64),
            self.alt_m if alt_m is None else alt_m,
            self.lat_deg,
            self.lon_deg,
            self.alt_m,
        )
        return np.column_stack([np.atleast_1d(e), np.atleast_1d(n)])

    def to_wgs84(self, xy: FloatArray, up_m: FloatArray | float = 0.0) -> FloatArray:
        """Local east/north metres ``(n, 2)`` → ``(n, 2)`` of (lat_deg, lon_deg)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        lat, lon, _alt = pymap3d.enu2geodetic(
            xy[:, 0], xy[:, 1], up_m, self.lat_deg, self.lon_deg, self.alt_m
        )
        return np.column_stack([np.atleast_1d(lat), np.atleast_1d(lon)])
