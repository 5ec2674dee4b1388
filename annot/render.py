"""Headless mesh and keypoint overlays (pyrender + OSMesa/EGL, OpenCV).

Camera convention (the project's, as ``annot.geometry.cameras.perspective_project``): vertices are in
an OpenCV-style camera frame in metres, x right, y down, z forward (into the scene); a point projects
to ``u = X/Z * fx + cx``, ``v = Y/Z * fy + cy`` pixels, with pixel centres at integer coordinates
(pixel (0, 0) covers [-0.5, 0.5]^2, as ``cv2.projectPoints`` and ``cv2.circle``).

pyrender/OpenGL cameras look down -Z with y up. Instead of touching the vertices, the scene is kept in
the OpenCV frame and the pyrender camera node gets the pose ``diag(1, -1, -1)`` = a 180 deg rotation
about X, which maps OpenGL's viewing direction -Z onto +Z and up (+Y) onto -Y. pyrender's
``IntrinsicsCamera`` puts pixel centres at half-integers (pixel i covers [i, i+1]), so the principal
point handed to it is ``princpt_px + 0.5``; without this, renders sit half a pixel off keypoints
drawn with OpenCV (mks0601 / 4D-Humans renderers ignore the half pixel).

Backend: ``PYOPENGL_PLATFORM`` is set to ``osmesa`` (software, any headless machine) unless the user
has already set it (e.g. ``egl`` on a GPU server); it must be set before OpenGL is first imported, so
pyrender is imported lazily, inside functions. Failures raise ``RuntimeError`` with the fix
(style.md §9 item 7, §10 item 14: rendering stays out of models and callers can degrade gracefully).

``MeshRenderer`` keeps one ``pyrender.OffscreenRenderer`` (one GL context) per image size, so
rendering many people or frames pays the context set-up once. Not thread-safe.
"""
from __future__ import annotations

import logging
import os
import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MESH_COLOR",
    "MeshRenderer",
    "render_mesh",
    "overlay_mesh",
    "draw_keypoints",
    "get_default_renderer",
    "tile_grid",
]

log = logging.getLogger(__name__)

DEFAULT_MESH_COLOR: tuple[float, float, float] = (0.65, 0.74, 0.86)  # light blue-grey, RGB in [0, 1]

# OpenCV camera frame -> OpenGL camera frame (and back): rotation by 180 deg about X.
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])

# Directional lights in the OpenCV camera frame: (direction the light travels, intensity). A key light
# from slightly above the camera (+y travels downward) and two dimmer fill lights from the sides; with
# ambient 0.15 the default colour peaks near 200/255, so shading never saturates.
_LIGHT_RIG: tuple[tuple[tuple[float, float, float], float], ...] = (
    ((0.0, 0.3, 1.0), 1.3),
    ((1.0, 0.2, 0.6), 0.5),
    ((-1.0, 0.2, 0.6), 0.5),
)

_FIX_HINT = (
    "Headless rendering needs OSMesa: install it with `apt-get install libosmesa6` (Debian/Ubuntu) and use "
    "PYOPENGL_PLATFORM=osmesa (the default here), or on a machine with a GPU driver set "
    "PYOPENGL_PLATFORM=egl "
    "before Python starts. PYOPENGL_PLATFORM must be set before OpenGL is first imported."
)


def _select_platform() -> str:
    """Default ``PYOPENGL_PLATFORM`` to osmesa (before OpenGL is imported) and return the value."""
    if "PYOPENGL_PLATFORM" not in os.environ and "OpenGL" in sys.modules:
        log.warning("OpenGL was imported before PYOPENGL_PLATFORM was set; headless rendering may fail. %s",
                    _FIX_HINT)
    return os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def _import_pyrender() -> Any:
    """Import pyrender with the headless platform selected; RuntimeError with the fix on failure."""
    platform = _select_platform()
    try:
        import pyrender
    except Exception as err:  # ImportError, OSError, or PyOpenGL errors from loading libOSMesa/libEGL
        raise RuntimeError(
            f"cannot import pyrender with PYOPENGL_PLATFORM={platform!r}: {err!r}. {_FIX_HINT}"
        ) from err
    return pyrender


def _check_vertices(vertices_cam_m: Any) -> np.ndarray:
    verts = np.asarray(vertices_cam_m, dtype=np.float32)
    if verts.ndim == 2:
        verts = verts[None]
    if verts.ndim != 3 or verts.shape[-1] != 3 or verts.shape[1] == 0:
        raise ValueError(
            f"vertices_cam_m: expected shape (V, 3) or (N, V, 3), got {np.shape(vertices_cam_m)}"
        )
    if not np.all(np.isfinite(verts)):
        raise ValueError("vertices_cam_m: contains NaN or inf")
    return verts


def _check_faces(faces: Any, num_vertices: int) -> np.ndarray:
    faces_arr = np.asarray(faces)
    if faces_arr.ndim != 2 or faces_arr.shape[1] != 3 or not np.issubdtype(faces_arr.dtype, np.integer):
        raise ValueError(
            f"faces: expected integer array of shape (F, 3), got {faces_arr.dtype} {faces_arr.shape}"
        )
    if faces_arr.size and (faces_arr.min() < 0 or faces_arr.max() >= num_vertices):
        raise ValueError(
            f"faces: indices must lie in [0, {num_vertices}), got [{faces_arr.min()}, {faces_arr.max()}]"
        )
    return faces_arr.astype(np.int64)


def _check_pair(value: Any, name: str, positive: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (2,) or not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        kind = "two positive finite numbers" if positive else "two finite numbers"
        raise ValueError(f"{name}: expected {kind} (x, y) in pixels, got {value!r}")
    return arr


def _check_hw(image_hw: Sequence[int]) -> tuple[int, int]:
    if len(image_hw) != 2 or any(int(s) != s or s <= 0 for s in image_hw):
        raise ValueError(f"image_hw: expected two positive integers (height, width), got {image_hw!r}")
    return int(image_hw[0]), int(image_hw[1])


def _check_image(image_rgb: Any, name: str = "image_rgb") -> np.ndarray:
    img = np.asarray(image_rgb)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name}: expected uint8 array (H, W, 3), got {img.dtype} {img.shape}")
    return img


def _check_colors(color: Any, num_meshes: int) -> np.ndarray:
    cols = np.asarray(color, dtype=np.float64)
    if cols.ndim == 1:
        cols = np.broadcast_to(cols, (num_meshes, cols.shape[0]))
    if cols.shape not in ((num_meshes, 3), (num_meshes, 4)) or np.any(cols < 0) or np.any(cols > 1):
        raise ValueError(
            f"color: expected RGB(A) floats in [0, 1], shape (3,), (4,) or ({num_meshes}, 3|4), got {color!r}"
        )
    if cols.shape[1] == 3:
        cols = np.concatenate([cols, np.ones((num_meshes, 1))], axis=1)
    return cols


def _check_light(light_intensity: Any) -> float:
    value = float(light_intensity)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"light_intensity: expected a positive finite number, got {light_intensity!r}")
    return value


def _direction_pose(direction: Sequence[float]) -> np.ndarray:
    """4x4 pose whose -Z axis points along ``direction`` (pyrender lights shine along their -Z)."""
    d = np.asarray(direction, dtype=np.float64)
    z_axis = -d / np.linalg.norm(d)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z_axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x_axis = np.cross(helper, z_axis)
    x_axis /= np.linalg.norm(x_axis)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x_axis, np.cross(z_axis, x_axis), z_axis], axis=1)
    return pose


class MeshRenderer:
    """Cache of pyrender offscreen renderers, one per (height, width), plus the scene recipe.

    Args:
        znear_m: near clipping plane in metres (geometry closer than this is cut away).
        zfar_m: far clipping plane in metres.
        ambient: ambient light level in [0, 1].
        max_cached: number of image sizes kept (least recently used contexts are freed).

    Renders meshes given in the OpenCV camera frame (module docstring). Use as a context manager or
    call :meth:`close` to free the GL contexts. Not thread-safe; one instance per process/thread.
    """

    def __init__(
        self, znear_m: float = 0.05, zfar_m: float = 100.0, ambient: float = 0.15, max_cached: int = 4
    ):
        if not 0 < znear_m < zfar_m:
            raise ValueError(f"MeshRenderer: need 0 < znear_m < zfar_m, got {znear_m}, {zfar_m}")
        if max_cached < 1:
            raise ValueError(f"MeshRenderer: max_cached must be >= 1, got {max_cached}")
        self.znear_m = float(znear_m)
        self.zfar_m = float(zfar_m)
        self.ambient = float(ambient)
        self.max_cached = int(max_cached)
        self._renderers: OrderedDict[tuple[int, int], Any] = OrderedDict()

    def _offscreen(self, height: int, width: int) -> Any:
        key = (height, width)
        if key in self._renderers:
            self._renderers.move_to_end(key)
            return self._renderers[key]
        pyrender = _import_pyrender()
        try:
            renderer = pyrender.OffscreenRenderer(viewport_width=width, viewport_height=height)
        except Exception as err:  # OSMesa/EGL context creation failures surface as many error types
            platform = os.environ.get("PYOPENGL_PLATFORM")
            raise RuntimeError(
                f"cannot create an offscreen GL context ({width}x{height}, PYOPENGL_PLATFORM={platform!r}): "
                f"{err!r}. {_FIX_HINT}"
            ) from err
        self._renderers[key] = renderer
        while len(self._renderers) > self.max_cached:
            _, old = self._renderers.popitem(last=False)
            old.delete()
        return renderer

    def _scene(self, verts: np.ndarray, faces: np.ndarray, colors: np.ndarray,
               focal_px: np.ndarray, princpt_px: np.ndarray, light_intensity: float = 1.0) -> Any:
        pyrender = _import_pyrender()
        import trimesh

        scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(self.ambient,) * 3)
        for person_verts, rgba in zip(verts, colors):
            material = pyrender.MetallicRoughnessMaterial(
                baseColorFactor=tuple(rgba), metallicFactor=0.0, roughnessFactor=0.6, alphaMode="OPAQUE"
            )
            tm = trimesh.Trimesh(person_verts, faces, process=False)
            scene.add(pyrender.Mesh.from_trimesh(tm, material=material, smooth=True))
        camera = pyrender.IntrinsicsCamera(
            fx=focal_px[0], fy=focal_px[1], cx=princpt_px[0] + 0.5, cy=princpt_px[1] + 0.5,
            znear=self.znear_m, zfar=self.zfar_m,
        )
        scene.add(camera, pose=CV_TO_GL)
        for direction, intensity in _LIGHT_RIG:
            light = pyrender.DirectionalLight(color=np.ones(3), intensity=intensity * light_intensity)
            scene.add(light, pose=_direction_pose(direction))
        return scene

    def render(
        self,
        vertices_cam_m: Any,
        faces: Any,
        focal_px: Any,
        princpt_px: Any,
        image_hw: Sequence[int],
        color: Any = DEFAULT_MESH_COLOR,
        light_intensity: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render one mesh (V, 3) or several sharing ``faces`` (N, V, 3); see :func:`render_mesh`.

        ``light_intensity`` (> 0, default 1) scales every directional light of the rig (ambient
        unchanged), e.g. for random lighting in synthetic data; ValueError when not a positive finite number.
        """
        light_scale = _check_light(light_intensity)
        verts = _check_vertices(vertices_cam_m)
        faces_arr = _check_faces(faces, verts.shape[1])
        focal = _check_pair(focal_px, "focal_px", positive=True)
        princpt = _check_pair(princpt_px, "princpt_px")
        height, width = _check_hw(image_hw)
        colors = _check_colors(color, verts.shape[0])
        offscreen = self._offscreen(height, width)
        scene = self._scene(verts, faces_arr, colors, focal, princpt, light_scale)
        pyrender = _import_pyrender()
        try:
            rgb, depth = offscreen.render(scene, flags=pyrender.RenderFlags.SKIP_CULL_FACES)
        except Exception as err:
            raise RuntimeError(f"offscreen rendering failed: {err!r}. {_FIX_HINT}") from err
        depth = np.ascontiguousarray(depth, dtype=np.float32)
        mask = depth > 0
        rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        rgb[~mask] = 0
        return rgb, depth, mask

    def overlay(
        self,
        image_rgb: Any,
        vertices_cam_m: Any,
        faces: Any,
        focal_px: Any,
        princpt_px: Any,
        alpha: float = 0.8,
        color: Any = DEFAULT_MESH_COLOR,
        light_intensity: float = 1.0,
    ) -> np.ndarray:
        """Blend the shaded mesh over ``image_rgb`` where it covers the image; see :func:`overlay_mesh`
        (``light_intensity`` as :meth:`render`)."""
        img = _check_image(image_rgb)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
        rgb, _, mask = self.render(vertices_cam_m, faces, focal_px, princpt_px, img.shape[:2], color,
                                   light_intensity)
        out = img.copy()
        blended = alpha * rgb[mask].astype(np.float32) + (1.0 - alpha) * img[mask].astype(np.float32)
        out[mask] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out

    def close(self) -> None:
        """Free every cached GL context."""
        while self._renderers:
            _, renderer = self._renderers.popitem()
            renderer.delete()

    def __enter__(self) -> MeshRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DEFAULT_RENDERER: MeshRenderer | None = None


def get_default_renderer() -> MeshRenderer:
    """The process-wide :class:`MeshRenderer` used when no ``renderer`` is passed (created lazily)."""
    global _DEFAULT_RENDERER
    if _DEFAULT_RENDERER is None:
        _DEFAULT_RENDERER = MeshRenderer()
    return _DEFAULT_RENDERER


def render_mesh(
    vertices_cam_m: Any,
    faces: Any,
    focal_px: Any,
    princpt_px: Any,
    image_hw: Sequence[int],
    color: Any = DEFAULT_MESH_COLOR,
    renderer: MeshRenderer | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a mesh seen by a pinhole camera into an image of size ``image_hw``.

    Args:
        vertices_cam_m: (V, 3) vertices in metres in the OpenCV camera frame (x right, y down,
            z forward), or (N, V, 3) for N people sharing ``faces`` (rendered together, so mutual
            occlusion is correct).
        faces: (F, 3) integer vertex indices.
        focal_px: (2,) focal lengths (fx, fy) in pixels, > 0.
        princpt_px: (2,) principal point (cx, cy) in pixels (pixel centres at integers).
        image_hw: (height, width) of the output in pixels.
        color: RGB or RGBA floats in [0, 1], shape (3,)/(4,) or one row per person.
        renderer: a :class:`MeshRenderer` to reuse; default :func:`get_default_renderer`.

    Returns:
        ``rgb`` uint8 (H, W, 3) shaded mesh on black; ``depth`` float32 (H, W), camera z in metres
        of the front-most surface, 0 where no mesh; ``mask`` bool (H, W) = ``depth > 0``.
        Back faces are drawn (no culling), so meshes with flipped winding still give full masks.

    Raises:
        ValueError: bad shapes/values (the message names the argument).
        RuntimeError: no headless GL backend (message gives the fix: ``apt-get install libosmesa6``
            or ``PYOPENGL_PLATFORM``).
    """
    renderer = renderer or get_default_renderer()
    return renderer.render(vertices_cam_m, faces, focal_px, princpt_px, image_hw, color)


def overlay_mesh(
    image_rgb: Any,
    vertices_cam_m: Any,
    faces: Any,
    focal_px: Any,
    princpt_px: Any,
    alpha: float = 0.8,
    color: Any = DEFAULT_MESH_COLOR,
    renderer: MeshRenderer | None = None,
) -> np.ndarray:
    """Blend the rendered mesh over an image; pixels the mesh does not cover are left unchanged.

    Args:
        image_rgb: uint8 (H, W, 3) RGB image; the camera (``focal_px``, ``princpt_px``) must be the
            one of this image (e.g. the crop camera for crops, the original camera for full images).
        vertices_cam_m, faces, focal_px, princpt_px, color, renderer: as :func:`render_mesh`.
        alpha: mesh opacity in [0, 1]; ``out = alpha * mesh + (1 - alpha) * image`` on the mask.

    Returns:
        uint8 (H, W, 3), a new array (the input is not modified).

    Raises:
        ValueError: bad image, alpha or mesh inputs. RuntimeError: as :func:`render_mesh`.
    """
    renderer = renderer or get_default_renderer()
    return renderer.overlay(image_rgb, vertices_cam_m, faces, focal_px, princpt_px, alpha, color)


def draw_keypoints(
    image: Any,
    kp2d_px: Any,
    mask: Any | None = None,
    color: tuple[int, int, int] = (255, 0, 0),
    radius_px: int = 3,
) -> np.ndarray:
    """Draw filled circles at 2D keypoints with OpenCV (sub-pixel centres, ``shift=4``).

    Args:
        image: uint8 (H, W, 3) image; the channel order is the caller's (``color`` is in the same
            order, RGB for our images).
        kp2d_px: (J, 2) or (J, 3) keypoints in pixels of this image (a third column is ignored).
        mask: (J,) visibility, bool or 0/1; joints with mask 0, non-finite coordinates or lying
            farther than ``radius_px`` outside the image are skipped.
            None draws all joints.
        color: 0-255 integers per channel.
        radius_px: circle radius in pixels.

    Returns:
        uint8 (H, W, 3), a new array.

    Raises:
        ValueError: bad image, keypoint or mask shapes.
    """
    import cv2

    out = _check_image(image, "image").copy()
    kps = np.asarray(kp2d_px, dtype=np.float64)
    if kps.ndim != 2 or kps.shape[1] not in (2, 3):
        raise ValueError(f"kp2d_px: expected shape (J, 2) or (J, 3), got {kps.shape}")
    vis = np.ones(len(kps), dtype=bool) if mask is None else np.asarray(mask).reshape(-1).astype(bool)
    if vis.shape != (len(kps),):
        raise ValueError(f"mask: expected shape ({len(kps)},), got {np.shape(mask)}")
    scale = 16  # cv2 fixed-point: coordinates * 2**4 with shift=4
    col = tuple(int(c) for c in color)
    height, width = out.shape[:2]
    for (x, y), visible in zip(kps[:, :2], vis):
        inside = -radius_px <= x <= width - 1 + radius_px and -radius_px <= y <= height - 1 + radius_px
        if visible and inside:  # also drops NaN/inf (comparisons are False)
            centre = (int(round(x * scale)), int(round(y * scale)))
            cv2.circle(out, centre, int(radius_px * scale), col, thickness=-1, lineType=cv2.LINE_8, shift=4)
    return out


def tile_grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles of equal height side by side, ``columns`` per row, black padding (uint8 RGB)."""
    height = tiles[0].shape[0]
    width = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // columns)
    grid = np.zeros((rows * height, columns * width, 3), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * height:(r + 1) * height, c * width:c * width + tile.shape[1]] = tile
    return grid
