"""Tests for annot.render against hand-computed pinhole projections (OpenCV convention)."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import trimesh

from annot import render
from annot.render import MeshRenderer, draw_keypoints, overlay_mesh, render_mesh

FOCAL = (500.0, 500.0)
PRINCPT = (160.0, 120.0)
HW = (240, 320)
CENTRE_M = np.array([0.1, -0.05, 3.0])
RADIUS_M = 0.2


@pytest.fixture(scope="module")
def renderer():
    with MeshRenderer() as r:
        yield r


@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(subdivisions=4, radius=RADIUS_M)


def test_sphere_projects_to_hand_computed_pixel(renderer, sphere):
    rgb, depth, mask = renderer.render(sphere.vertices + CENTRE_M, sphere.faces, FOCAL, PRINCPT, HW)
    assert rgb.shape == (240, 320, 3) and rgb.dtype == np.uint8
    assert depth.shape == (240, 320) and depth.dtype == np.float32
    assert mask.shape == (240, 320) and mask.dtype == bool
    # u = X/Z*f + c: 0.1/3*500 + 160 = 176.667, v = -0.05/3*500 + 120 = 111.667
    ys, xs = np.nonzero(mask)
    assert xs.mean() == pytest.approx(176.667, abs=0.5)
    assert ys.mean() == pytest.approx(111.667, abs=0.5)
    # silhouette radius of a sphere: f * r / sqrt(d^2 - r^2), d = distance to the centre
    d = np.linalg.norm(CENTRE_M)
    r_px = 500.0 * RADIUS_M / np.sqrt(d**2 - RADIUS_M**2)
    assert mask.sum() == pytest.approx(np.pi * r_px**2, rel=0.03)
    assert depth[112, 177] == pytest.approx(3.0 - 0.2, abs=2e-3)
    assert np.all(depth[~mask] == 0) and np.all(rgb[~mask] == 0)
    assert depth[mask].min() >= 2.8 - 1e-3 and depth[mask].max() <= 3.0 + 1e-3
    assert rgb[mask].max() < 255  # the light rig does not saturate the default colour
    assert rgb[mask].min() > 0


def test_pixel_centres_are_integers_and_y_points_down(renderer):
    # A fronto-parallel quad at z = 2 m projecting to u in [99.7, 140.3], v in [50.7, 80.3].
    # With pixel centres at integers exactly columns 100..140 and rows 51..80 are covered
    # (a half-pixel error would give 100..139 / 51..79; a y flip would give rows near 160..189).
    z, f, (cx, cy) = 2.0, 500.0, PRINCPT
    x0, x1 = (99.7 - cx) * z / f, (140.3 - cx) * z / f
    y0, y1 = (50.7 - cy) * z / f, (80.3 - cy) * z / f
    verts = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    _, depth, mask = renderer.render(verts, faces, (f, f), PRINCPT, HW)
    rows, cols = np.nonzero(mask)
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (100, 140, 51, 80)
    assert mask.sum() == 41 * 30
    np.testing.assert_allclose(depth[mask], 2.0, atol=1e-4)


def test_mesh_behind_camera_is_invisible(renderer, sphere):
    rgb, depth, mask = renderer.render(sphere.vertices + [0.1, -0.05, -3.0], sphere.faces, FOCAL, PRINCPT, HW)
    assert not mask.any() and np.all(depth == 0) and np.all(rgb == 0)


def test_two_people_occlude_by_depth(renderer, sphere):
    near = sphere.vertices + [0.0, 0.0, 2.0]
    far = sphere.vertices + [0.4, 0.0, 3.0]
    rgb, depth, mask = renderer.render(
        np.stack([far, near]), sphere.faces, FOCAL, PRINCPT, HW, color=[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    )
    assert depth[120, 160] == pytest.approx(1.8, abs=2e-3)
    assert rgb[120, 160, 2] > rgb[120, 160, 0]  # the near (blue) sphere is in front
    # near disc: centre u 160, radius ~50 px (110..210); far disc: centre 0.4/3*500+160 = 226.7,
    # radius ~33 px (194..260). Where they overlap the near sphere wins; beyond 210 the far one shows.
    assert depth[120, 200] < 2.2 and rgb[120, 200, 2] > rgb[120, 200, 0]
    assert depth[120, 240] == pytest.approx(2.85, abs=0.1)
    assert rgb[120, 240, 0] > rgb[120, 240, 2]


def test_overlay_changes_only_masked_pixels(renderer, sphere):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    original = image.copy()
    verts = sphere.vertices + CENTRE_M
    out = overlay_mesh(image, verts, sphere.faces, FOCAL, PRINCPT, alpha=0.8, renderer=renderer)
    rgb, _, mask = renderer.render(verts, sphere.faces, FOCAL, PRINCPT, HW)
    assert np.array_equal(image, original)  # input untouched
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    expected = np.rint(0.8 * rgb[mask].astype(np.float32) + 0.2 * image[mask].astype(np.float32))
    assert np.array_equal(out[mask], expected.astype(np.uint8))
    assert (out[mask] != image[mask]).any(axis=1).mean() > 0.9


def test_module_functions_use_default_renderer(sphere):
    _, _, mask = render_mesh(sphere.vertices + CENTRE_M, sphere.faces, FOCAL, PRINCPT, HW)
    assert mask.sum() > 3000
    assert render.get_default_renderer() is render.get_default_renderer()


def test_renderer_cache_reuses_contexts(monkeypatch, sphere):
    pyrender = render._import_pyrender()
    created = []

    class CountingRenderer(pyrender.OffscreenRenderer):
        def __init__(self, *args, **kwargs):
            created.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pyrender, "OffscreenRenderer", CountingRenderer)
    verts = sphere.vertices + CENTRE_M
    with MeshRenderer(max_cached=1) as r:
        for _ in range(3):
            r.render(verts, sphere.faces, FOCAL, PRINCPT, HW)
        assert len(created) == 1
        r.render(verts, sphere.faces, FOCAL, PRINCPT, (100, 100))
        r.render(verts, sphere.faces, FOCAL, PRINCPT, HW)  # evicted by max_cached=1, so rebuilt
        assert len(created) == 3


def test_missing_pyrender_backend_gives_fix(monkeypatch, sphere):
    monkeypatch.setitem(sys.modules, "pyrender", None)  # makes `import pyrender` raise ImportError
    with pytest.raises(RuntimeError, match=r"apt-get install libosmesa6.*PYOPENGL_PLATFORM"):
        MeshRenderer().render(sphere.vertices + CENTRE_M, sphere.faces, FOCAL, PRINCPT, (50, 60))


def test_context_failure_gives_fix(monkeypatch, sphere):
    pyrender = render._import_pyrender()

    def broken(*args, **kwargs):
        raise ImportError("Unable to load OpenGL library", "libOSMesa.so: cannot open shared object file")

    monkeypatch.setattr(pyrender, "OffscreenRenderer", broken)
    with pytest.raises(RuntimeError, match=r"offscreen GL context.*libosmesa6"):
        MeshRenderer().render(sphere.vertices + CENTRE_M, sphere.faces, FOCAL, PRINCPT, (50, 60))


def test_platform_default_and_user_choice(monkeypatch):
    monkeypatch.setenv("PYOPENGL_PLATFORM", "egl")
    assert render._select_platform() == "egl"
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    assert render._select_platform() == "osmesa"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"faces": np.array([[0, 1, 99]])}, "faces"),
        ({"faces": np.array([[0.0, 1.0, 2.0]])}, "faces"),
        ({"vertices_cam_m": np.zeros((4, 2))}, "vertices_cam_m"),
        ({"vertices_cam_m": np.full((4, 3), np.nan)}, "vertices_cam_m"),
        ({"focal_px": (-500.0, 500.0)}, "focal_px"),
        ({"princpt_px": (1.0,)}, "princpt_px"),
        ({"image_hw": (240.5, 320)}, "image_hw"),
        ({"color": (2.0, 0.0, 0.0)}, "color"),
    ],
)
def test_bad_inputs_name_the_argument(renderer, kwargs, field):
    args = {
        "vertices_cam_m": np.array([[0, 0, 2.0], [0.1, 0, 2.0], [0, 0.1, 2.0], [0.1, 0.1, 2.0]]),
        "faces": np.array([[0, 1, 2]]),
        "focal_px": FOCAL,
        "princpt_px": PRINCPT,
        "image_hw": HW,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        renderer.render(**args)


def test_overlay_rejects_bad_image_and_alpha(renderer, sphere):
    verts = sphere.vertices + CENTRE_M
    with pytest.raises(ValueError, match="image_rgb"):
        overlay_mesh(np.zeros((240, 320, 3), np.float32), verts, sphere.faces, FOCAL, PRINCPT,
                     renderer=renderer)
    with pytest.raises(ValueError, match="alpha"):
        overlay_mesh(np.zeros((240, 320, 3), np.uint8), verts, sphere.faces, FOCAL, PRINCPT, 1.5,
                     renderer=renderer)


def test_draw_keypoints():
    image = np.zeros((60, 80, 3), np.uint8)
    kp2d_px = np.array([[50.0, 40.0], [10.0, 10.0], [np.nan, 5.0], [1e9, 1e9]])
    mask = np.array([1, 0, 1, 1])
    out = draw_keypoints(image, kp2d_px, mask, color=(0, 255, 0), radius_px=3)
    assert np.all(image == 0)  # input untouched
    assert tuple(out[40, 50]) == (0, 255, 0)
    assert tuple(out[40, 53]) == (0, 255, 0) and tuple(out[40, 54]) == (0, 0, 0)
    assert np.all(out[:20, :20] == 0)  # masked-out joint not drawn
    drawn = np.argwhere(out[..., 1] == 255)
    assert np.abs(drawn - [40, 50]).max() <= 3  # nothing else drawn (NaN / far-away points skipped)
    with pytest.raises(ValueError, match="mask"):
        draw_keypoints(image, kp2d_px, np.ones(3))
    with pytest.raises(ValueError, match="kp2d_px"):
        draw_keypoints(image, np.zeros((4,)))
