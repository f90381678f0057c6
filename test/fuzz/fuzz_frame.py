"""Coverage-guided fuzzing of the data-frame decoder, decode_frame (wire/frame.py), which
every client of the native protocol runs on what the network gives it.

A crash is any exception but FrameError (except the known one, counted: a corrupt compressed
body), or a decoded frame that does not re-encode to the same records.

    python test/fuzz/fuzz_frame.py -max_total_time=20 [corpus_dir]
"""
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["rover_ws_bridge"]):
    from rover_ws_bridge.wire.frame import FrameError, decode_frame, encode_frame


def TestOneInput(data: bytes) -> None:
    try:
        frame = decode_frame(data, max_body_bytes=1 << 20)
    except FrameError:
        return
    assert frame.total_size == len(data)
    assert decode_frame(encode_frame(frame.records)).records == frame.records


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
