"""The sim's JPEG encoder, checked with real decoders: Pillow (a test-only requirement) for the
pixels, and libjpeg-turbo's djpeg, where installed, for a strict reading of the stream."""
from __future__ import annotations

import io
import shutil
import subprocess
import time

import numpy as np
import pytest

from rover_ws_bridge import sim_jpeg

Image = pytest.importorskip(
    "PIL.Image", reason="Pillow (requirements-test.txt) is the test's JPEG decoder")


def decode(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("RGB")).astype(np.int64)


def smooth_picture(height: int, width: int) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width]
    return np.stack([
        128 + 100 * np.sin(columns / 9.0),
        128 + 100 * np.cos(rows / 7.0),
        (rows + columns) * 255 // max(height + width - 2, 1),
    ], axis=-1).astype(np.uint8)


def impulses() -> np.ndarray:
    # Isolated bright pixels: long zero runs (ZRL codes) and large coefficients.
    picture = np.zeros((48, 48, 3), dtype=np.uint8)
    picture[::7, ::5] = 255
    return picture


def noise() -> np.ndarray:
    return np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)


LOOP_ENCODING_S: list[float] = []


@pytest.fixture(scope="module")
def camera_loop() -> list[bytes]:
    started = time.perf_counter()
    frames = sim_jpeg.encode_camera_loop()
    LOOP_ENCODING_S.append(time.perf_counter() - started)
    return frames


def test_camera_loop_encoding_time_is_reported(
        camera_loop: list[bytes], capsys: pytest.CaptureFixture[str]) -> None:
    # Reported, not asserted: it depends on the machine and its load.
    sizes = [len(frame) for frame in camera_loop]
    with capsys.disabled():
        print(f"\nsim_jpeg: {len(camera_loop)} frames of 320x240 encoded in "
              f"{LOOP_ENCODING_S[0]:.2f} s at start-up, {min(sizes)}-{max(sizes)} bytes each "
              f"before the sim's filler")


@pytest.mark.parametrize("height, width", [(240, 320), (37, 53), (1, 1), (17, 250)])
def test_pictures_of_any_size_decode_close_to_the_original(height: int, width: int) -> None:
    picture = smooth_picture(height, width)
    decoded = decode(sim_jpeg.encode_jpeg(picture, quality=90))
    assert decoded.shape == picture.shape
    assert np.abs(decoded - picture).mean() < 4.0


@pytest.mark.parametrize("quality", [1, 50, 100])
def test_extreme_content_and_qualities_decode(quality: int) -> None:
    for picture in (noise(), impulses(), np.full((16, 16, 3), 77, dtype=np.uint8)):
        assert decode(sim_jpeg.encode_jpeg(picture, quality)).shape == picture.shape
    sparse = impulses()
    assert np.abs(decode(sim_jpeg.encode_jpeg(sparse, 100)) - sparse).mean() < 1.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        sim_jpeg.encode_jpeg(np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="quality"):
        sim_jpeg.encode_jpeg(np.zeros((8, 8, 3), dtype=np.uint8), quality=0)


def test_comment_segments_are_skipped_by_the_decoder(camera_loop: list[bytes]) -> None:
    head, tail = sim_jpeg.split_after_app0(camera_loop[0])
    # Longer than one segment can hold: split in two.
    padded = head + sim_jpeg.comment_segments(bytes(range(256)) * 300) + tail
    assert len(padded) > len(camera_loop[0]) + sim_jpeg.COM_MAX_PAYLOAD
    assert np.array_equal(decode(padded), decode(camera_loop[0]))


def test_camera_loop_is_a_moving_plausible_picture(camera_loop: list[bytes]) -> None:
    pictures = [decode(frame) for frame in camera_loop]
    assert len(pictures) == 48
    for picture in pictures:
        assert picture.shape == (240, 320, 3)
        assert picture.std() > 20.0
        # Sky above, ground below: a blue top, a warmer bottom.
        sky, ground = picture[30:60].mean(axis=(0, 1)), picture[150:200].mean(axis=(0, 1))
        assert sky[2] > sky[0] + 30 and ground[0] > ground[2] + 20
    steps = [np.abs(a - b).mean() for a, b in zip(pictures, pictures[1:] + pictures[:1])]
    assert min(steps) > 1.0  # every frame moves on, the last one into the first
    assert max(steps) < 4 * float(np.median(steps))  # and the loop joins without a jump


@pytest.mark.skipif(shutil.which("djpeg") is None,
                    reason="djpeg not installed (apt-get install libjpeg-turbo-progs): "
                           "the strict decoder check is skipped; Pillow's checks still run")
def test_djpeg_reads_every_stream_without_a_warning(camera_loop: list[bytes]) -> None:
    head, tail = sim_jpeg.split_after_app0(camera_loop[1])
    streams = [*camera_loop[:3], head + sim_jpeg.comment_segments(b"\xff" * 70_000) + tail,
               sim_jpeg.encode_jpeg(noise(), 100), sim_jpeg.encode_jpeg(noise(), 1),
               sim_jpeg.encode_jpeg(impulses(), 100), sim_jpeg.encode_jpeg(smooth_picture(37, 53))]
    for stream in streams:
        completed = subprocess.run(["djpeg", "-ppm"], input=stream, capture_output=True,
                                   timeout=10, check=False)
        # libjpeg reports damaged data as warnings with exit code 2, or errors.
        assert completed.returncode == 0 and completed.stderr == b"", completed.stderr
        assert completed.stdout.startswith(b"P6\n")
