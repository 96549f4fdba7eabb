"""`patchline capture`: collect good images for training from a camera or a folder.

    quality.py   the checks a candidate frame must pass: exposure, sharpness, not a near-duplicate
    sources.py   frames from an rtsp:// camera (plugins/camera.py) or a folder, with their times
    schedule.py  which frames are candidates: every Nth, every T seconds, or one per trigger
    triggers.py  triggers over MQTT (patchline/<camera>/capture) and their replies
    folder.py    the output folder: what train --images and tune read, bounded by a count and a quota
    settings.py  one capture's settings, checked at start

The job that ties them together is app/capture.py.
"""
