"""Camera detector settings and the ``--camera`` file of ``borderwatch detect``.

:class:`DetectorSettings` configures one frame detector (thermal or night vision, optionally a
neural network); :class:`CameraFile` is the YAML file ``borderwatch detect --camera`` reads:
detector settings plus, optionally, the camera's intrinsics and mount, which turn the
detector's size-only class hints into hints from apparent size at the estimated range.
``docs/cameras.md`` describes every field with an example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from borderwatch.config.yamlload import load_yaml_model

__all__ = [
    "CameraFile",
    "DetectorSettings",
    "IntrinsicsSettings",
    "MountSettings",
    "load_camera_file",
]


class IntrinsicsSettings(BaseModel):
    """Camera intrinsics: an OpenCV calibration file, or an ideal camera from its field of
    view."""

    model_config = ConfigDict(extra="forbid")

    calibration_file: Path | None = Field(
        None,
        description="OpenCV calibration file (cv2.FileStorage YAML/XML with camera_matrix, "
        "distortion_coefficients, image_width, image_height); relative to the config file",
    )
    width: int | None = Field(None, gt=0, description="image width, pixels (without a file)")
    height: int | None = Field(None, gt=0, description="image height, pixels (without a file)")
    hfov_deg: FiniteFloat | None = Field(
        None, gt=0, lt=180, description="horizontal field of view, degrees (without a file)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        ideal = (self.width, self.height, self.hfov_deg)
        if self.calibration_file is None and None in ideal:
            raise ValueError("give calibration_file, or width, height and hfov_deg")
        if self.calibration_file is not None and any(x is not None for x in ideal):
            raise ValueError("give either calibration_file or width/height/hfov_deg, not both")
        return self


class MountSettings(BaseModel):
    """How the camera sits on its platform; see :class:`~borderwatch.sensors.camera.geometry.
    CameraMount`."""

    model_config = ConfigDict(extra="forbid")

    yaw_deg: FiniteFloat = Field(
        0.0, description="optical axis from the platform heading, clockwise, degrees"
    )
    pitch_deg: FiniteFloat = Field(
        0.0, ge=-90, le=90, description="optical axis above horizontal, degrees (down < 0)"
    )
    roll_deg: FiniteFloat = Field(0.0, description="image roll, clockwise from behind, degrees")
    height_m: FiniteFloat = Field(
        2.0, gt=0, description="camera height above water or flat ground, metres"
    )
    sigma_yaw_deg: FiniteFloat = Field(0.2, ge=0, description="1-σ yaw calibration, degrees")
    sigma_pitch_deg: FiniteFloat = Field(
        0.2, ge=0, description="1-σ pitch calibration and platform pitching, degrees"
    )
    sigma_height_m: FiniteFloat = Field(
        0.2, ge=0, description="1-σ height above the surface (waves, terrain), metres"
    )


class DetectorSettings(BaseModel):
    """One frame detector.

    Thermal frames are converted to temperature first: Y16 counts by ``y16_gain_k`` and
    ``y16_offset_k`` (kelvin = gain·count + offset; a FLIR Boson in TLinear mode gives 0.01 K
    per count, offset 0), 8-bit frames by ``gray_gain_k`` kelvin per grey level (white-hot).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["thermal", "nightvision"] = Field(
        "thermal", description="thermal (warm bodies) or nightvision (motion in low light)"
    )
    y16_gain_k: FiniteFloat = Field(0.01, gt=0, description="kelvin per Y16 count")
    y16_offset_k: FiniteFloat = Field(0.0, description="kelvin at Y16 count 0")
    gray_gain_k: FiniteFloat = Field(
        0.2, gt=0, description="kelvin per grey level of an 8-bit thermal frame"
    )
    polarity: Literal["white_hot", "black_hot"] = Field(
        "white_hot",
        description="8-bit thermal frames: white_hot (warm is bright) or black_hot (inverted); "
        "Y16 counts always rise with temperature",
    )
    contrast_k: FiniteFloat = Field(
        2.0, gt=0, description="least contrast above the local background, kelvin"
    )
    snr: FiniteFloat = Field(
        6.0, gt=0, description="least contrast in units of the frame's robust noise σ"
    )
    background_px: int = Field(
        64, ge=8, le=1024, description="largest hot object kept by the local background, pixels"
    )
    min_area_px: int = Field(2, ge=1, description="smallest blob, pixels")
    max_area_px: int = Field(40000, ge=1, description="largest blob, pixels")
    max_body_k: FiniteFloat = Field(
        320.0,
        description="peak temperature above which a small blob is a hot spot (lamp, exhaust), K",
    )
    hotspot_max_area_px: int = Field(
        400, ge=0, description="blobs up to this area hotter than max_body_k are hot spots"
    )
    min_score: FiniteFloat = Field(0.3, ge=0, le=1, description="least score reported")
    background_model: bool = Field(
        True, description="in video, suppress blobs that stay in place (static hot spots)"
    )
    static_frames: int = Field(
        150, ge=2, description="frames a blob must stay in place to count as static"
    )
    nv_threshold: FiniteFloat = Field(
        16.0, gt=0, description="night vision: MOG2 variance threshold (squared σ units)"
    )
    nv_persist_frames: int = Field(
        3, ge=1, description="night vision: frames a moving blob must persist"
    )
    nv_motion_px: int = Field(
        8, ge=0, le=64, description="night vision: farthest a mover moves per frame, pixels"
    )
    nv_history: int = Field(200, ge=2, description="night vision: MOG2 history, frames")
    surface: Literal["water", "ground"] = Field(
        "water", description="what the camera looks at: wide warm blobs are boats or vehicles"
    )
    dnn_model: Path | None = Field(
        None, description="ONNX model run by OpenCV DNN instead of the classical detector"
    )
    dnn_input_size: tuple[int, int] = Field(
        (640, 512), description="network input width, height (pixels)"
    )
    dnn_score: FiniteFloat = Field(0.5, gt=0, lt=1, description="network score threshold")
    max_detections: int = Field(200, ge=1, description="most detections kept per frame")
    intrinsics: IntrinsicsSettings | None = Field(
        None, description="camera intrinsics, for class hints from size at range"
    )
    mount: MountSettings | None = Field(
        None, description="camera mount, for class hints from size at range"
    )


class CameraFile(BaseModel):
    """The ``--camera`` file of ``borderwatch detect``."""

    model_config = ConfigDict(extra="forbid")

    detector: DetectorSettings = Field(
        default_factory=DetectorSettings, description="detector settings"
    )


def load_camera_file(path: str | Path) -> CameraFile:
    """Load a ``--camera`` file; a relative calibration or model file is resolved against the
    file's folder.

    Raises :class:`~borderwatch.errors.ConfigError` naming the file and line.
    """
    path = Path(path)
    cfg = load_yaml_model(path, CameraFile)
    detector = cfg.detector
    intr = detector.intrinsics
    if intr is not None and intr.calibration_file is not None:
        resolved = path.parent / intr.calibration_file
        intr = intr.model_copy(update={"calibration_file": resolved})
        detector = detector.model_copy(update={"intrinsics": intr})
    if detector.dnn_model is not None:
        detector = detector.model_copy(update={"dnn_model": path.parent / detector.dnn_model})
    return cfg.model_copy(update={"detector": detector})
