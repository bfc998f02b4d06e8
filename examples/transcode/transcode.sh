#!/bin/sh
# transcode.sh INPUT OUTPUT: re-encode a video to 320x180 H.264 at a lower
# bitrate, as an MP4. This is the application the example packages as
# "transcoder" 1.0; every task runs it on one video. It exits non-zero when
# ffmpeg is missing or fails, so that the task fails (and its output file,
# uploaded only on taskSuccess, is not).
set -eu

if [ $# -ne 2 ]; then
	echo "usage: transcode.sh INPUT OUTPUT" >&2
	exit 2
fi
in=$1
out=$2
if ! command -v ffmpeg >/dev/null 2>&1; then
	echo "transcode.sh: ffmpeg is not installed on this node" >&2
	exit 127
fi

ffmpeg -hide_banner -loglevel error -nostdin -y -i "$in" \
	-vf scale=320:180 -c:v libx264 -preset veryfast -b:v 200k -maxrate 250k -bufsize 500k \
	-c:a aac -b:a 64k -movflags +faststart "$out"

echo "transcoded $in ($(wc -c <"$in") bytes) to $out ($(wc -c <"$out") bytes) on ${AZ_BATCH_NODE_ID:-this machine}"
