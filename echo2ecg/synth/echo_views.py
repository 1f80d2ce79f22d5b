"""Rendering of synthetic echo clips: a fan-shaped scan sector with speckle, beating
chambers, valves, burned-in text, a toolbar and a sweeping ECG strip.

Each view shows only part of the heart, as in a real study (``VIEW_SHOWS``):

- apical views (A4C, A2C): the LV in one plane each, emptying from LVEDV to LVESV over
  the cycle, with a static end-systolic outline and walls whose brightness and thickness
  follow their shortening. The LV's eccentricity and how its contraction divides between
  the planes are the patient's, so one apical view shows the volumes and the LVEF only
  roughly and the two together exactly, as the clinical biplane method measures them;
- parasternal views (PLAX, PSAX): the valves, thick, bright and calcified with SHD, and a
  left atrium (PLAX) and mitral annulus (PSAX) dilated by it; their LV is the patient's
  anatomy, with a fixed wall brightness and a contraction not tied to the LVEF;
- the subcostal IVC view: liver, inferior vena cava and right atrium; no phenotype.

Some apical clips are taken through a poor acoustic window (``poor_window``): a rib's
shadow darkens a wedge of the fan, and the plane is foreshortened and off-axis, so the LV
it shows is no measurement of this heart (it is drawn from a random other phenotype). A
reader, or an attention over the study's views, can see which clips to distrust; a mean
of views cannot.

Besides the phenotype a clip shows the patient's :class:`Anatomy` (chamber sizes and axis
that do not depend on the phenotype) and, new in every clip, a little probe placement, the
cardiac phase, the gain and the speckle pattern. The scanner preset (sector geometry) is
the department's and fixed. Everything a view shows of the phenotype is static as well as
in motion, because a random-init video encoder keeps static appearance and loses motion
amplitude. The burned-in ECG strip lies below the sector, which the clip recipe keeps
alone. Anatomy is laid out in sector units: ``u`` lateral and ``v`` depth, both divided
by the sector radius, with the transducer at ``(0, 0)``; it is computed at half resolution
and multiplied by full-resolution speckle.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from echo2ecg.synth.ecg_signals import EcgTraits, lead_ii_trace, r_peak_times
from echo2ecg.synth.phenotypes import Phenotype, sample_patient

APICAL_VIEWS = ("A4C", "A2C")
PARASTERNAL_VIEWS = ("PLAX", "PSAX")
OTHER_VIEWS = ("IVC",)
VIEWS = APICAL_VIEWS + PARASTERNAL_VIEWS + OTHER_VIEWS
# What each view shows of the phenotype (the other phenotypes do not change it).
VIEW_SHOWS = {
    "A4C": ("lvedv", "lvesv", "lvsv", "lvef"),
    "A2C": ("lvedv", "lvesv", "lvsv", "lvef"),
    "PLAX": ("shd",),
    "PSAX": ("shd",),
    "IVC": (),
}

BLOOD_LEVEL = 0.05
TISSUE_LEVEL = 0.28
TOOLBAR_WIDTH = 28
ECG_SWEEP_S = 2.5  # seconds the sweep takes across the strip
# The trace's RGB: a scanner's ECG green, inside the HSV bounds the Echo-Enhanced ECG paper
# published for its scanner (OpenCV HSV (77, 199, 160) against [64, 97, 113]–[91, 255, 198]).
ECG_TRACE_RGB = (35, 160, 106)
ECG_TRACE_THICKNESS = 2  # pixels, as scanners draw it (a 1-pixel line loses its chroma in JPEG)
_TEXT_COLOUR = (225, 225, 225)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SUBPIXEL_BITS = 4  # cv2 drawing with fixed-point coordinates (1/16 pixel)
SPECKLE_COMPRESSION = 0.25  # display compression of the speckle envelope
PROBE_JITTER = 0.0015  # sector units: how far the probe's view moves between clips


@dataclass(frozen=True)
class ScanSector:
    """The fan: transducer (apex) at pixel ``(apex_x, apex_y)``, ``radius`` px, opening
    ``half_angle`` radians each side of vertical; ``depth_cm`` is the radius in cm."""

    apex_x: float
    apex_y: float
    radius: float
    half_angle: float
    depth_cm: float

    def bounding_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) pixels, inclusive, of the scan region."""
        half_width = self.radius * np.sin(self.half_angle)
        return (
            int(np.floor(self.apex_x - half_width)),
            int(np.floor(self.apex_y)),
            int(np.ceil(self.apex_x + half_width)),
            int(np.ceil(self.apex_y + self.radius)),
        )

    def mask(self, rows: int, cols: int) -> np.ndarray:
        """Bool (rows, cols): pixels inside the fan."""
        y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
        dx, dy = x - self.apex_x, y - self.apex_y
        in_reach = np.hypot(dx, dy) <= self.radius
        return in_reach & (np.abs(np.arctan2(dx, dy)) <= self.half_angle) & (dy >= 0)


@dataclass(frozen=True)
class EcgStrip:
    """Where the scanner draws its ECG: the box ``x0 <= x < x1``, ``y0 <= y < y1`` (pixels,
    half-open), the trace's zero line at row ``baseline_y`` with ``px_per_mv`` pixels per
    mV upwards, swept left to right across ``x0 .. x1`` every ``sweep_s`` seconds."""

    x0: int
    y0: int
    x1: int
    y1: int
    baseline_y: float
    px_per_mv: float
    sweep_s: float

    @property
    def seconds_per_px(self) -> float:
        return self.sweep_s / (self.x1 - self.x0)


@dataclass(frozen=True)
class RenderedClip:
    """``frames`` uint8 (F, rows, cols, 3) RGB and the scan ``sector`` they show; the ECG
    ``strip`` and its ground truth: lead II ``trace_mv`` (mV) at times ``trace_t`` (s), the
    frames shown at ``frame_times`` (s) on the same clock; ``shown``, the phenotype the
    clip's heart is drawn with (the patient's, or through a poor window another's)."""

    frames: np.ndarray
    sector: ScanSector
    strip: EcgStrip
    trace_t: np.ndarray
    trace_mv: np.ndarray
    frame_times: np.ndarray
    shown: Phenotype


class _Canvas:
    """Half-resolution anatomy intensities (F, h, w) in [0, 1] and their sector coordinates."""

    def __init__(self, n_frames: int, rows: int, cols: int, sector: ScanSector):
        self.sector = sector
        self.h, self.w = (rows + 1) // 2, (cols + 1) // 2
        # Half-resolution pixel j covers full-resolution pixel centre 2j + 0.5.
        full_x = 2 * np.arange(self.w, dtype=np.float32) + 0.5
        full_y = 2 * np.arange(self.h, dtype=np.float32) + 0.5
        self.u_axis = (full_x - sector.apex_x) / sector.radius
        self.v_axis = (full_y - sector.apex_y) / sector.radius
        self.image = np.full((n_frames, self.h, self.w), TISSUE_LEVEL, dtype=np.float32)

    def to_pixels(self, u: float, v: float) -> tuple[int, int]:
        """Fixed-point half-resolution pixel coordinates of sector point (u, v) for cv2."""
        scale = 1 << _SUBPIXEL_BITS
        x = (self.sector.apex_x + u * self.sector.radius - 0.5) / 2.0
        y = (self.sector.apex_y + v * self.sector.radius - 0.5) / 2.0
        return int(round(x * scale)), int(round(y * scale))

    def paint_ellipse(
        self, centre_u, centre_v, semi_long, semi_short, angle: float, level: float
    ) -> None:
        """Paint a soft ellipse with intensity ``level`` into every frame.

        ``centre_u``, ``centre_v``, ``semi_long``, ``semi_short``: scalars or (F,) arrays in
        sector units; the long axis points down (+v) when ``angle`` (radians) is 0 and turns
        towards +u as it grows. Only the bounding box over all frames is computed.
        """
        n_frames = len(self.image)
        cu, cv, a, b = (
            np.broadcast_to(np.asarray(x, dtype=np.float32), (n_frames,))[:, None, None]
            for x in (centre_u, centre_v, semi_long, semi_short)
        )
        reach = float(a.max())
        cols = self._span(self.u_axis, float(cu.min()) - reach, float(cu.max()) + reach)
        rows = self._span(self.v_axis, float(cv.min()) - reach, float(cv.max()) + reach)
        if cols.start >= cols.stop or rows.start >= rows.stop:
            return
        du = self.u_axis[None, None, cols] - cu
        dv = self.v_axis[None, rows, None] - cv
        sin, cos = np.float32(np.sin(angle)), np.float32(np.cos(angle))
        along = (du * sin + dv * cos) / a
        across = (du * cos - dv * sin) / b
        # Edge about one half-resolution pixel wide: scale (1 - r^2) by the short axis in pixels.
        sharpness = b * self.sector.radius / 4.0
        weight = np.clip((1.0 - along * along - across * across) * sharpness, 0.0, 1.0)
        region = self.image[:, rows, cols]
        region += weight * (level - region)

    def paint_chamber(
        self, centre_u, centre_v, semi_long, semi_short, angle: float, wall, wall_level: float
    ) -> None:
        """A blood-filled cavity (see :meth:`paint_ellipse`) inside a wall ``wall`` thick."""
        self.paint_ellipse(
            centre_u, centre_v, np.add(semi_long, wall), np.add(semi_short, wall), angle, wall_level
        )
        self.paint_ellipse(centre_u, centre_v, semi_long, semi_short, angle, BLOOD_LEVEL)

    def paint_strokes(
        self, strokes_per_frame: list[list[tuple]], thickness: int, level: float
    ) -> None:
        """Paint anti-aliased segments; ``strokes_per_frame[f]`` = [((u0, v0), (u1, v1)), ...]."""
        for frame, strokes in zip(self.image, strokes_per_frame):
            ink = np.zeros((self.h, self.w), dtype=np.uint8)
            for start, end in strokes:
                cv2.line(
                    ink,
                    self.to_pixels(*start),
                    self.to_pixels(*end),
                    255,
                    thickness,
                    cv2.LINE_AA,
                    _SUBPIXEL_BITS,
                )
            weight = ink.astype(np.float32) / 255.0
            frame += weight * (level - frame)

    def paint_static(self, ink: np.ndarray, level: float) -> None:
        """Paint a uint8 (h, w) drawing into every frame with intensity ``level``."""
        weight = ink.astype(np.float32) / 255.0
        self.image += weight[None] * (level - self.image)

    @staticmethod
    def _span(axis: np.ndarray, low: float, high: float) -> slice:
        return slice(int(np.searchsorted(axis, low)), int(np.searchsorted(axis, high)))


@dataclass(frozen=True)
class Anatomy:
    """A patient's heart apart from the phenotype: the same in every view and study of
    the patient, and unrelated to LVEF, the LV volumes and SHD.

    Sizes are in sector units (fractions of the sector radius). ``lv_eccentricity`` is
    the ratio of the LV's septal-lateral diameter (seen in A4C) to its anterior-inferior
    one (seen in A2C); ``lv_contraction_split`` the share of the LV's short-axis shortening
    that happens in the A4C plane (regional wall motion), so neither apical view alone
    gives the LV's volume or ejection fraction, both together do (the biplane method).
    ``parasternal_lv`` scales the LV drawn in parasternal views, ``parasternal_stroke`` is
    the fraction by which its area shrinks in systole there (parasternal views do not show
    the LVEF); ``ivc_diameter`` is the inferior vena cava's width in the subcostal view.
    """

    rv_size: float
    ra_size: float
    la_size: float
    aortic_root: float
    parasternal_lv: float
    parasternal_stroke: float
    psax_radius: float
    ivc_diameter: float
    tilt: float
    lv_eccentricity: float = 1.0
    lv_contraction_split: float = 0.5


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """A patient's non-phenotype anatomy (see :class:`Anatomy`)."""
    return Anatomy(
        rv_size=float(rng.uniform(0.16, 0.20)),
        ra_size=float(rng.uniform(0.075, 0.095)),
        la_size=float(rng.uniform(0.08, 0.10)),
        aortic_root=float(rng.uniform(0.045, 0.065)),
        parasternal_lv=float(rng.uniform(0.88, 1.12)),
        parasternal_stroke=float(rng.uniform(0.25, 0.4)),
        psax_radius=float(rng.uniform(0.14, 0.18)),
        ivc_diameter=float(rng.uniform(0.05, 0.09)),
        tilt=float(rng.normal(0.0, 0.03)),
        lv_eccentricity=float(np.exp(rng.normal(0.0, 0.35))),
        lv_contraction_split=float(rng.uniform(0.15, 0.85)),
    )


def contraction(t: np.ndarray, r_peaks: np.ndarray) -> np.ndarray:
    """Systolic contraction (T,) in [0, 1] at times ``t`` s: 0 at end-diastole (the R peak),
    1 at end-systole about a third of the RR interval later."""
    index = np.clip(np.searchsorted(r_peaks, t, side="right") - 1, 0, len(r_peaks) - 2)
    phase = (t - r_peaks[index]) / (r_peaks[index + 1] - r_peaks[index])
    return np.exp(-(((phase - 0.33) / 0.15) ** 2))


def lv_volumes(phenotype: Phenotype, squeeze: np.ndarray) -> np.ndarray:
    """LV volume (ml) per frame for contraction ``squeeze`` (F,) in [0, 1]."""
    return phenotype.lvedv - phenotype.lvsv * squeeze


def lv_plane_axes(
    phenotype: Phenotype, anatomy: Anatomy, squeeze: np.ndarray, four_chamber: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The LV's semi-axes (F,) in one apical plane, sector units, over the cycle.

    The LV is an ellipsoid of length L and short-axis diameters D4 (A4C plane) and D2
    (A2C plane): volume ∝ L · D4 · D2, D4 / D2 = ``anatomy.lv_eccentricity``. As the volume
    falls from LVEDV by the fraction f, L shortens by f^(1/3) and the diameters share the
    rest, D4 by f^(2s/3) and D2 by f^(2(1 − s)/3), s = ``anatomy.lv_contraction_split``.
    One plane shows L and one diameter: the product of both planes' areas follows the
    volume exactly, either plane alone only up to the patient's eccentricity and split.
    """
    squeeze = np.asarray(squeeze, dtype=float)
    fraction = lv_volumes(phenotype, squeeze) / phenotype.lvedv
    length = 0.19 * (phenotype.lvedv / 150.0) ** (1 / 3) * fraction ** (1 / 3)
    split = anatomy.lv_contraction_split if four_chamber else 1.0 - anatomy.lv_contraction_split
    shape = (
        np.sqrt(anatomy.lv_eccentricity) if four_chamber else 1.0 / np.sqrt(anatomy.lv_eccentricity)
    )
    diameter = 0.19 / 2.2 * (phenotype.lvedv / 150.0) ** (1 / 3) * shape
    return length, diameter * fraction ** (2 * split / 3)


def plane_shortening(phenotype: Phenotype, anatomy: Anatomy, four_chamber: bool) -> float:
    """Fractional shortening of the plane's short-axis diameter, end-diastole to -systole."""
    ed, es = (
        lv_plane_axes(phenotype, anatomy, np.array([s]), four_chamber)[1][0] for s in (0.0, 1.0)
    )
    return float(1.0 - es / ed)


def apical_myocardium_level(shortening: float) -> float:
    """Myocardial brightness of the walls in an apical plane: 0.35 for walls that do not
    shorten to 0.95 for 45 % shortening or more; a still frame shows how well they work."""
    return 0.35 + 0.6 * float(np.clip(shortening / 0.45, 0.0, 1.0))


def apical_wall_thickness(shortening: float, squeeze: np.ndarray) -> np.ndarray:
    """LV wall thickness (F,) in sector units in an apical plane: thin where the walls
    barely shorten, and thickening by a third as the cavity empties."""
    return (0.025 + 0.04 * float(np.clip(shortening / 0.45, 0.0, 1.0))) * (1.0 + 0.35 * squeeze)


def foreshortened_phenotype(rng: np.random.Generator) -> Phenotype:
    """What a foreshortened, off-axis apical plane shows of the LV: nothing of this
    heart's, a phenotype drawn afresh (every LVEF class equally likely, SHD as common as
    in the demo), so its volumes and LVEF look plausible and are wrong."""
    return sample_patient(rng, (1 / 3, 1 / 3, 1 / 3), 0.35)


def _jitter(rng: np.random.Generator, sd: float, size=None):
    """Per-clip probe placement nuisance: a small normal offset."""
    return rng.normal(0.0, sd, size=size)


def _apical(
    canvas: _Canvas,
    phenotype: Phenotype,
    anatomy: Anatomy,
    squeeze: np.ndarray,
    rng: np.random.Generator,
    four_chamber: bool,
) -> None:
    """A4C / A2C: LV hanging from the apex, atria below the base, RV/RA on the left in A4C.

    The LV shows the phenotype in this plane (:func:`lv_plane_axes`): its cavity empties
    from end-diastole to end-systole, the end-systolic outline stays drawn, and the walls'
    brightness and thickness follow how much they shorten. The atria and the RV are the
    patient's anatomy.
    """
    tilt = (0.17 if four_chamber else 0.05) + anatomy.tilt + _jitter(rng, PROBE_JITTER)
    axis = np.array([np.sin(tilt), np.cos(tilt)])[:, None]
    apex = np.array([0.05 if four_chamber else 0.0, 0.10]) + _jitter(rng, PROBE_JITTER, size=2)
    shortening = plane_shortening(phenotype, anatomy, four_chamber)
    myo = apical_myocardium_level(shortening)
    chamber_wall = 0.6  # brightness of the walls of the other chambers

    if four_chamber:
        rv_tilt = -0.25
        rv_axis = np.array([np.sin(rv_tilt), np.cos(rv_tilt)])[:, None]
        rv_apex = np.array([-0.05, 0.16])[:, None]
        rv_long = anatomy.rv_size * (1.0 - 0.12 * squeeze)
        rv_centre = rv_apex + rv_axis * rv_long
        canvas.paint_chamber(*rv_centre, rv_long, rv_long / 2.4, rv_tilt, 0.025, chamber_wall)
        ra_size = anatomy.ra_size * (1.0 + 0.1 * squeeze)
        ra_centre = rv_apex + rv_axis * (2 * rv_long + ra_size + 0.02)
        canvas.paint_chamber(*ra_centre, ra_size, ra_size * 0.9, rv_tilt, 0.02, chamber_wall)

    semi_long, semi_short = lv_plane_axes(phenotype, anatomy, squeeze, four_chamber)
    la_size = anatomy.la_size * (1.0 + 0.1 * squeeze)  # atria fill while the LV ejects
    la_centre = apex[:, None] + axis * (2 * semi_long + la_size + 0.02)
    canvas.paint_chamber(*la_centre, la_size, la_size * 0.95, tilt, 0.02, chamber_wall)
    canvas.paint_chamber(
        *(apex[:, None] + axis * semi_long),
        semi_long,
        semi_short,
        tilt,
        apical_wall_thickness(shortening, squeeze),
        myo,
    )
    es_long, es_short = (
        float(x[0]) for x in lv_plane_axes(phenotype, anatomy, np.ones(1), four_chamber)
    )
    canvas.paint_static(_outline(canvas, apex + axis[:, 0] * es_long, es_long, es_short, tilt), 0.5)


def _outline(
    canvas: _Canvas, centre: np.ndarray, semi_long: float, semi_short: float, tilt: float
) -> np.ndarray:
    """uint8 (h, w) drawing of an ellipse outline (the LV at end-systole)."""
    scale = (1 << _SUBPIXEL_BITS) * canvas.sector.radius / 2.0
    ink = np.zeros((canvas.h, canvas.w), dtype=np.uint8)
    cv2.ellipse(
        ink,
        canvas.to_pixels(*centre),
        (int(semi_short * scale), int(semi_long * scale)),
        -np.degrees(tilt),
        0,
        360,
        255,
        1,
        cv2.LINE_AA,
        _SUBPIXEL_BITS,
    )
    return ink


PARASTERNAL_MYOCARDIUM = 0.62  # parasternal views do not show the LVEF
SHD_LA_DILATION = 1.45  # left atrial enlargement with valve disease, parasternal views


def _valve_look(phenotype: Phenotype) -> tuple[int, float]:
    """Leaflet thickness (half-resolution px) and brightness: thick and bright with SHD."""
    return (4, 1.0) if phenotype.shd else (2, 0.62)


def _calcium(
    canvas: _Canvas, spots: list[tuple[float, float]], rng: np.random.Generator
) -> np.ndarray:
    """uint8 (h, w) drawing of calcified nodules at the given sector points."""
    ink = np.zeros((canvas.h, canvas.w), dtype=np.uint8)
    for u, v in spots:
        radius = int(rng.uniform(2.0, 2.5) * (1 << _SUBPIXEL_BITS))
        cv2.circle(ink, canvas.to_pixels(u, v), radius, 255, -1, cv2.LINE_AA, _SUBPIXEL_BITS)
    return ink


def _leaflet(hinge: tuple[float, float], length: float, angle: float) -> tuple[tuple, tuple]:
    """A leaflet from its hinge, ``angle`` radians from +u towards +v."""
    tip = (hinge[0] + length * np.cos(angle), hinge[1] + length * np.sin(angle))
    return hinge, tip


def _parasternal_long_axis(
    canvas: _Canvas,
    phenotype: Phenotype,
    anatomy: Anatomy,
    squeeze: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """PLAX: RV on top, LV across the middle, aortic root and LA to the right, mitral and
    aortic leaflets between them. Shows SHD (thick, bright, calcified leaflets and a
    dilated LA); the LV is the patient's anatomy."""
    myo = PARASTERNAL_MYOCARDIUM
    u0, v0 = _jitter(rng, PROBE_JITTER, size=2)
    horizontal = np.pi / 2
    la = anatomy.la_size * 1.15 * (SHD_LA_DILATION if phenotype.shd else 1.0)
    root = anatomy.aortic_root
    for cu, cv, semi_u, semi_v in (
        (-0.02, 0.28, 0.33, 0.05),  # RV
        (0.2 + la, 0.66, la * 1.1, la),  # LA
        (0.30, 0.40, 0.17, root),
    ):  # aortic root
        canvas.paint_chamber(u0 + cu, v0 + cv, semi_u, semi_v, horizontal, 0.02, myo)
    lv_scale = anatomy.parasternal_lv * np.sqrt(1.0 - anatomy.parasternal_stroke * squeeze)
    canvas.paint_chamber(
        u0 - 0.15,
        v0 + 0.52,
        0.26 * lv_scale,
        0.12 * lv_scale,
        horizontal,
        0.045 * (1.0 + 0.35 * squeeze),
        myo,
    )
    # Outflow tract (LV to aortic root) and mitral inflow (LA to LV), where the valves sit.
    canvas.paint_ellipse(u0 + 0.10, v0 + 0.43, 0.09, 0.045, horizontal, BLOOD_LEVEL)
    canvas.paint_ellipse(u0 + 0.14, v0 + 0.56, 0.10, 0.065, horizontal, BLOOD_LEVEL)

    thickness, brightness = _valve_look(phenotype)
    anterior_hinge, posterior_hinge = (u0 + 0.17, v0 + 0.495), (u0 + 0.21, v0 + 0.61)
    aortic_top, aortic_bottom = (u0 + 0.16, v0 + 0.35), (u0 + 0.16, v0 + 0.45)
    strokes = []
    for s in squeeze:  # the mitral valve opens in diastole, the aortic valve in systole
        mitral_open, aortic_open = 1.0 - s, s
        strokes.append(
            [
                _leaflet(anterior_hinge, 0.09, np.radians(125 + 60 * mitral_open)),
                _leaflet(posterior_hinge, 0.10, np.radians(207 - 57 * mitral_open)),
                _leaflet(aortic_top, 0.055, np.radians(60 - 60 * aortic_open)),
                _leaflet(aortic_bottom, 0.055, np.radians(-60 + 60 * aortic_open)),
            ]
        )
    canvas.paint_strokes(strokes, thickness, brightness)
    if phenotype.shd:
        hinges = [anterior_hinge, posterior_hinge, aortic_top, aortic_bottom]
        canvas.paint_static(_calcium(canvas, hinges, rng), 1.0)


def _parasternal_short_axis(
    canvas: _Canvas,
    phenotype: Phenotype,
    anatomy: Anatomy,
    squeeze: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """PSAX at mitral level: LV ring with the mitral 'fish mouth', RV crescent on top.
    Shows SHD (thick, bright, calcified mitral leaflets); the LV is the patient's anatomy."""
    myo = PARASTERNAL_MYOCARDIUM
    cu, cv = _jitter(rng, PROBE_JITTER), 0.54 + _jitter(rng, PROBE_JITTER)
    canvas.paint_chamber(cu - 0.08, cv - 0.22, 0.22, 0.07, np.pi / 2, 0.02, myo)
    radius = anatomy.psax_radius * np.sqrt(1.0 - anatomy.parasternal_stroke * squeeze)
    canvas.paint_chamber(cu, cv, radius, radius, 0.0, 0.05 * (1.0 + 0.35 * squeeze), myo)

    thickness, brightness = _valve_look(phenotype)
    half_width = 0.09 * (1.25 if phenotype.shd else 1.0)  # the annulus dilates with disease
    left, right = (cu - half_width, cv), (cu + half_width, cv)
    strokes = []
    for s, r in zip(squeeze, radius):
        gap = 0.5 * r * (1.0 - s) * (0.6 if phenotype.shd else 1.0)  # stenotic valves open less
        top, bottom = (cu, cv - gap), (cu, cv + gap)
        strokes.append([(left, top), (top, right), (left, bottom), (bottom, right)])
    canvas.paint_strokes(strokes, thickness, brightness)
    if phenotype.shd:
        canvas.paint_static(_calcium(canvas, [left, right, (cu, cv - 0.04)], rng), 1.0)


def _subcostal_ivc(
    canvas: _Canvas,
    phenotype: Phenotype,
    anatomy: Anatomy,
    squeeze: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Subcostal IVC view: liver tissue, the inferior vena cava entering the right atrium,
    a hepatic vein. Shows none of the phenotype: the IVC is the patient's anatomy and
    narrows a little with each heartbeat."""
    u0, v0 = _jitter(rng, PROBE_JITTER, size=2)
    canvas.paint_ellipse(u0, v0 + 0.5, 0.42, 0.5, np.pi / 2, 0.45)  # liver
    width = anatomy.ivc_diameter * (1.0 - 0.15 * squeeze)
    canvas.paint_ellipse(u0 + 0.02, v0 + 0.55, 0.38, width, np.pi / 2 + 0.15, BLOOD_LEVEL)
    canvas.paint_chamber(
        u0 + 0.33, v0 + 0.42, anatomy.ra_size, anatomy.ra_size * 0.9, 0.0, 0.02, 0.6
    )
    canvas.paint_ellipse(u0 - 0.05, v0 + 0.38, 0.12, 0.02, np.pi / 2 - 0.6, BLOOD_LEVEL)


_VIEW_PAINTERS = {
    "A4C": functools.partial(_apical, four_chamber=True),
    "A2C": functools.partial(_apical, four_chamber=False),
    "PLAX": _parasternal_long_axis,
    "PSAX": _parasternal_short_axis,
    "IVC": _subcostal_ivc,
}


def scan_sector(rows: int, cols: int, rng: np.random.Generator) -> ScanSector:
    """The fan of the department's scanner preset: fits above the ECG strip and left of the
    toolbar; only the depth setting varies between clips."""
    half_angle = np.radians(40.0)
    apex_y = 0.07 * rows
    widest = (cols / 2 - TOOLBAR_WIDTH - 4) / np.sin(half_angle)
    radius = min(0.78 * rows, widest)
    return ScanSector(
        apex_x=cols / 2.0,
        apex_y=apex_y,
        radius=radius,
        half_angle=half_angle,
        depth_cm=float(rng.choice([15.0, 16.0])),
    )


def _speckle(rows: int, cols: int, margin: int, rng: np.random.Generator) -> np.ndarray:
    """Speckle (rows + margin, cols + margin), mean 1: the magnitude of blurred complex
    noise (Rayleigh, elongated laterally like a real point-spread function), compressed
    as a scanner's log display compresses it (contrast about a fifth of the raw
    envelope's)."""
    shape = (rows + margin, cols + margin)
    real = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 1.3, sigmaY=0.8)
    imag = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 1.3, sigmaY=0.8)
    magnitude = np.hypot(real, imag) ** SPECKLE_COMPRESSION
    return magnitude / magnitude.mean()


def _depth_gain(canvas: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Static (h, w) gain: near-field clutter, depth attenuation, coarse tissue texture."""
    v = canvas.v_axis[:, None]
    noise = rng.standard_normal((canvas.h, canvas.w)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), 5.0)
    texture *= 0.06 / max(float(texture.std()), 1e-6)
    return (1.05 - 0.3 * v) * (1.0 + texture) + 0.6 * np.exp(-np.clip(v, 0.0, None) / 0.04)


def rib_shadow(rows: int, cols: int, sector: ScanSector, rng: np.random.Generator) -> np.ndarray:
    """Float32 (rows, cols) gain of a rib's acoustic shadow: about a fifth inside a wedge
    of the fan's left side (0.25 to 0.35 rad wide, clear of the LV), beyond the first
    centimetre or so, with soft edges; 1 elsewhere."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    angle = np.arctan2(x - sector.apex_x, y - sector.apex_y)
    depth = np.hypot(x - sector.apex_x, y - sector.apex_y) / sector.radius
    start = rng.uniform(-0.68, -0.55)
    end = start + rng.uniform(0.25, 0.35)
    edge = 0.04
    across = np.clip(np.minimum(angle - start, end - angle) / edge, 0.0, 1.0)
    below = np.clip((depth - 0.06) / 0.04, 0.0, 1.0)
    return (1.0 - 0.8 * across * below).astype(np.float32)


def _to_gray(
    canvas: _Canvas,
    sector: ScanSector,
    rows: int,
    cols: int,
    rng: np.random.Generator,
    shadow: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 (F, rows, cols): anatomy upsampled, times static gain (and a ``shadow``'s)
    and per-frame speckle (the speckle pattern changes every frame, as it does on a
    scanner)."""
    margin = 16
    speckle = _speckle(rows, cols, margin, rng)
    inside = sector.mask(rows, cols)
    gain = cv2.resize(_depth_gain(canvas, rng), (cols, rows), interpolation=cv2.INTER_LINEAR)
    gain *= 255.0 * rng.uniform(0.95, 1.05) * inside
    if shadow is not None:
        gain *= shadow
    offsets = rng.integers(0, margin + 1, size=(len(canvas.image), 2))
    gray = np.empty((len(canvas.image), rows, cols), dtype=np.uint8)
    for f, (dy, dx) in enumerate(offsets):
        frame = cv2.resize(canvas.image[f], (cols, rows), interpolation=cv2.INTER_LINEAR)
        frame *= gain
        frame *= speckle[dy : dy + rows, dx : dx + cols]
        np.clip(frame, 0.0, 255.0, out=frame)
        gray[f] = frame
    return gray


def _static_overlay(
    rows: int, cols: int, sector: ScanSector, hospital: str, fps: float, view: str
) -> np.ndarray:
    """RGB (rows, cols, 3) of everything a scanner burns in that never changes: text,
    toolbar, depth marks, orientation marker. Black where nothing is drawn."""
    overlay = np.zeros((rows, cols, 3), dtype=np.uint8)
    scale = max(0.25, rows / 850.0)
    line = max(8, int(round(rows / 26)))
    right = cols - TOOLBAR_WIDTH - int(cols * 0.22)
    texts = (
        (hospital.upper(), (4, line)),
        ("S5-1  ADULT ECHO", (4, 2 * line)),
        (f"FR {fps:.0f} Hz", (right, line)),
        (f"{sector.depth_cm:.0f} cm", (right, 2 * line)),
        ("2D 58%", (right, 3 * line)),
    )
    for text, origin in texts:
        cv2.putText(overlay, text, origin, _FONT, scale, _TEXT_COLOUR, 1, cv2.LINE_AA)
    cv2.putText(overlay, "HR", (4, rows - 4), _FONT, scale, ECG_TRACE_RGB, 1, cv2.LINE_AA)

    toolbar = overlay[:, cols - TOOLBAR_WIDTH :]
    toolbar[:] = (48, 48, 52)
    icon_colours = ((0, 170, 220), (230, 200, 0), (200, 200, 200), (220, 80, 60), (90, 200, 90))
    for i, colour in enumerate(icon_colours):
        top = 8 + i * (TOOLBAR_WIDTH + 6)
        cv2.rectangle(toolbar, (5, top), (TOOLBAR_WIDTH - 6, top + TOOLBAR_WIDTH - 11), colour, -1)

    for depth in np.arange(1.0, sector.depth_cm + 0.5, 1.0):  # depth marks beside the fan
        r = sector.radius * depth / sector.depth_cm
        x = sector.apex_x + r * np.sin(sector.half_angle) + 6
        y = sector.apex_y + r * np.cos(sector.half_angle)
        cv2.circle(overlay, (int(x), int(y)), 2 if depth % 5 == 0 else 1, _TEXT_COLOUR, -1)
    marker = (int(sector.apex_x - sector.radius * 0.12 - 10), int(sector.apex_y + 4))
    cv2.circle(
        overlay, marker, 3, (240, 140, 0) if view in PARASTERNAL_VIEWS else (0, 140, 240), -1
    )
    return overlay


def ecg_strip(rows: int, cols: int, sector: ScanSector) -> EcgStrip:
    """The ECG strip below the fan, right of the "HR" label and left of the toolbar."""
    top = sector.apex_y + sector.radius + 3
    return EcgStrip(
        x0=24,
        y0=int(np.ceil(top)) - 1,
        x1=cols - TOOLBAR_WIDTH - 8,
        y1=rows,
        baseline_y=(top + rows) / 2.0 + 0.1 * (rows - top),
        px_per_mv=max(2.0, 0.3 * (rows - top)),
        sweep_s=ECG_SWEEP_S,
    )


def draw_ecg_sweep(
    frames: np.ndarray,
    times: np.ndarray,
    trace_t: np.ndarray,
    trace_mv: np.ndarray,
    strip: EcgStrip,
) -> None:
    """Draw, in place, the thin green lead-II trace a scanner sweeps left to right.

    Column x shows the most recent sample written there: the sweep head moves across the
    strip every ``ECG_SWEEP_S`` seconds and erases a short gap ahead of itself.
    """
    width = strip.x1 - strip.x0
    columns = np.arange(width)
    gap = max(3, width // 40)
    for frame, t in zip(frames, times):
        head = (t % strip.sweep_s) / strip.sweep_s * width
        age = ((head - columns) % width) / width * strip.sweep_s
        y = strip.baseline_y - strip.px_per_mv * np.interp(t - age, trace_t, trace_mv)
        y = np.clip(y, strip.y0 + 1, strip.y1 - 2)
        points = np.stack([strip.x0 + columns, y], axis=1).round().astype(np.int32)
        head_index = int(head)
        before_head = points[: head_index + 1]
        after_gap = points[min(width, head_index + gap) :]
        pieces = [p for p in (before_head, after_gap) if len(p) > 1]
        cv2.polylines(frame, pieces, False, ECG_TRACE_RGB, ECG_TRACE_THICKNESS, cv2.LINE_8)


def render_clip(
    phenotype: Phenotype,
    anatomy: Anatomy,
    traits: EcgTraits,
    view: str,
    rng: np.random.Generator,
    *,
    n_frames: int,
    rows: int,
    cols: int,
    fps: float,
    heart_rate_bpm: float,
    hospital: str,
    poor_window: bool = False,
) -> RenderedClip:
    """Render one echo view of a heart as RGB uint8 frames (F, rows, cols, 3).

    ``phenotype`` and ``anatomy`` shape what the view shows (see the module docstring);
    ``rng`` draws everything that changes from clip to clip (probe placement, sector,
    gain, speckle, cardiac phase). The cardiac cycle follows R peaks at ``heart_rate_bpm``;
    the ECG strip shows lead II of the same beats (the patient's ``traits``), so the trace
    and the wall motion are in step. ``poor_window`` (apical views only): a rib shadow
    across the fan, and an LV drawn from :func:`foreshortened_phenotype` instead of
    ``phenotype``.
    """
    if view not in _VIEW_PAINTERS:
        raise ValueError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    if poor_window and view not in APICAL_VIEWS:
        raise ValueError(f"a poor acoustic window is rendered for apical views, not {view}")
    sector = scan_sector(rows, cols, rng)
    times = np.arange(n_frames) / fps + rng.uniform(ECG_SWEEP_S, 2 * ECG_SWEEP_S)
    r_peaks = r_peak_times(rng, heart_rate_bpm, times[0] - ECG_SWEEP_S, times[-1])
    canvas = _Canvas(n_frames, rows, cols, sector)
    shown = foreshortened_phenotype(rng) if poor_window else phenotype
    _VIEW_PAINTERS[view](canvas, shown, anatomy, contraction(times, r_peaks), rng)
    shadow = rib_shadow(rows, cols, sector, rng) if poor_window else None
    gray = _to_gray(canvas, sector, rows, cols, rng, shadow)

    frames = np.repeat(gray[..., None], 3, axis=-1)
    overlay = _static_overlay(rows, cols, sector, hospital, fps, view)
    drawn = overlay.any(axis=-1)
    frames[:, drawn] = overlay[drawn]
    strip = ecg_strip(rows, cols, sector)
    trace_t = np.arange(times[0] - ECG_SWEEP_S - 0.1, times[-1] + 0.1, 1.0 / 250.0)
    trace_mv = lead_ii_trace(phenotype, traits, r_peaks, trace_t)
    draw_ecg_sweep(frames, times, trace_t, trace_mv, strip)
    return RenderedClip(frames, sector, strip, trace_t, trace_mv, times, shown)
