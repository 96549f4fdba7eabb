#!/bin/sh
# Make a short H.264 test clip from still images, for tools/rtsp_server.py (which loops it).
#
#   tools/make_test_video.sh OUT.mp4 IMAGE [IMAGE ...]
#   FPS=25 FRAMES_EACH=25 tools/make_test_video.sh clip.mp4 good/*.png defect.png
#
# Each image becomes FRAMES_EACH frames (default 1) at FPS frames per second (default 25).
# Needs ffmpeg (Debian package 'ffmpeg'). All images are scaled to the first one's size,
# rounded down to even numbers as yuv420p requires.
set -eu
if [ "$#" -lt 2 ]; then
    echo "usage: $0 OUT.mp4 IMAGE [IMAGE ...]" >&2
    exit 2
fi
out=$1; shift
fps=${FPS:-25}
each=${FRAMES_EACH:-1}
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for img in "$@"; do
    [ -f "$img" ] || { echo "$0: $img is not a file" >&2; exit 2; }
    # The concat demuxer wants absolute paths, single-quoted.
    abs=$(cd "$(dirname "$img")" && pwd)/$(basename "$img")
    entry=$(printf "file '%s'" "$(printf %s "$abs" | sed "s/'/'\\\\''/g")")
    i=0
    while [ "$i" -lt "$each" ]; do echo "$entry" >> "$list"; i=$((i + 1)); done
done
ffmpeg -hide_banner -loglevel error -y -f concat -safe 0 -r "$fps" -i "$list" \
    -vf "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p" \
    -c:v libx264 -preset veryfast -g "$fps" -movflags +faststart "$out"
echo "$out"
