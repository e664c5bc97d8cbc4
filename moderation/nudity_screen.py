"""Nudity screening of sampled keyframes with NudeNet's bundled 320n ONNX detector.

The session is built with one intra-op and one inter-op thread (the machine is shared; the
analysis pool gives parallelism across reels instead). The nudity score of a reel is the
highest detection score of an exposed-body class over its frames. Blocking; runs in the
analysis pool.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import onnxruntime
from nudenet import NudeDetector

from moderation.signals import NUDITY, Signal

EXPOSED_CLASSES = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)


class NudityScreen:
    def __init__(self, threads: int = 1) -> None:
        cv2.setNumThreads(threads)
        self._detector = NudeDetector()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        model_path = self._detector.onnx_session._model_path  # the bundled 320n.onnx
        self._detector.onnx_session = onnxruntime.InferenceSession(
            model_path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        # One ONNX session is not meant to be run from several threads at once.
        self._lock = threading.Lock()

    def frame_score(self, frame: Path) -> tuple[float, str]:
        with self._lock:
            detections = self._detector.detect(str(frame))
        exposed = [d for d in detections if d["class"] in EXPOSED_CLASSES]
        if not exposed:
            return 0.0, ""
        top = max(exposed, key=lambda d: float(d["score"]))
        return float(top["score"]), str(top["class"])

    def screen(self, frames: Sequence[Path]) -> Signal:
        best, label, where = 0.0, "", ""
        for frame in frames:
            score, found = self.frame_score(frame)
            if score > best:
                best, label, where = score, found, frame.name
        if not label:
            return Signal(NUDITY, 0.0, f"no exposed body parts in {len(frames)} frames")
        return Signal(NUDITY, best, f"{label} in {where}")
