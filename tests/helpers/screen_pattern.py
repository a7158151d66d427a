"""Draws a known, moving pattern over a whole X screen (run as a child process under Xvfb).

A window the size of the screen at its top-left corner shows mid-grey with the frame
stamp (:mod:`media.measure.stamp`) across the top, its frame number counting up from the
number given, ten times a second, so a receiver of a shared screen can read back
which pictures it got, and that they are live. Prints "drawing" once shown.

    python tests/helpers/screen_pattern.py WIDTH HEIGHT FIRST_NUMBER
"""

from __future__ import annotations

import sys
import time

import cv2
import numpy as np

from media.measure.stamp import Stamp, capture_clock_us, write_stamp

GREY = 128
PERIOD = 0.1
TITLE = "pattern"


def main() -> None:
    width, height, first = (int(value) for value in sys.argv[1:4])
    cv2.namedWindow(TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    cv2.moveWindow(TITLE, 0, 0)
    number = first
    announced = False
    while True:
        luma = np.full((height, width), GREY, dtype=np.uint8)
        write_stamp(luma, Stamp(number, capture_clock_us()))
        cv2.imshow(TITLE, cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR))
        cv2.waitKey(1)
        if not announced:
            cv2.moveWindow(TITLE, 0, 0)
            print("drawing", flush=True)
            announced = True
        number += 1
        time.sleep(PERIOD)


if __name__ == "__main__":
    main()
