"""A clock tests move by hand, so a loaded machine cannot make time-based figures drift."""


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s
