#!/usr/bin/env bash
# The Azure Batch ffmpeg tutorial ("Run a parallel workload with Azure Batch
# using the Python API") on Kiln, with the kiln CLI: upload videos to storage,
# package the transcoder as an application, create a pool whose start task
# makes sure ffmpeg is there, a job with one task per video, wait, and
# download the transcoded videos that the tasks uploaded to an output
# container. See README.md next to this script for every step.
#
# Usage: run.sh [--cleanup]
#   --cleanup  delete the job, pool, application and containers at the end
#
# Start `kiln server` first. Environment (all optional):
#   KILN              kiln binary (default: kiln on PATH)
#   WORK_DIR          generated videos, package, JSON and downloads (default ./transcode-work)
#   POOL_ID JOB_ID    default transcode-pool, transcode-job
#   INPUT_CONTAINER   default videos
#   OUTPUT_CONTAINER  default transcoded
#   APP_ID APP_VERSION default transcoder, 1.0
#   NODES SLOTS       pool size and task slots per node (default 2 and 2)
#   VIDEO_SECONDS     length of each generated video (default 3)
#   NODE_WAIT         seconds to wait for the nodes' start tasks, and for an
#                     earlier run's job to be deleted (default 600)
#   TIMEOUT           how long `kiln job wait` waits for the tasks (default 10m)
set -euo pipefail

KILN=${KILN:-kiln}
WORK_DIR=${WORK_DIR:-$PWD/transcode-work}
POOL_ID=${POOL_ID:-transcode-pool}
JOB_ID=${JOB_ID:-transcode-job}
INPUT_CONTAINER=${INPUT_CONTAINER:-videos}
OUTPUT_CONTAINER=${OUTPUT_CONTAINER:-transcoded}
APP_ID=${APP_ID:-transcoder}
APP_VERSION=${APP_VERSION:-1.0}
NODES=${NODES:-2}
SLOTS=${SLOTS:-2}
VIDEO_SECONDS=${VIDEO_SECONDS:-3}
NODE_WAIT=${NODE_WAIT:-600}
TIMEOUT=${TIMEOUT:-10m}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

cleanup=false
for arg in "$@"; do
	case $arg in
	--cleanup) cleanup=true ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $arg (usage: run.sh [--cleanup])" >&2
		exit 2
		;;
	esac
done

step() { printf '\n==> %s\n' "$*"; }
die() {
	echo "run.sh: $*" >&2
	exit 1
}
# kiln echoes each kiln command, then runs it.
kiln() {
	printf '$ kiln'
	printf ' %q' "$@"
	printf '\n'
	"$KILN" "$@"
}

# The videos: four test patterns, each with its own tone.
names=(testsrc testsrc2 smptebars rgbtestsrc)
freqs=(440 554 659 880)
# Task id of each video, and the environment variable that holds the
# package's directory on a node (Linux: '-' and '.' become '_').
task_id() { echo "transcode-$1"; }
app_dir_var="AZ_BATCH_APP_PACKAGE_${APP_ID//[-.]/_}_${APP_VERSION//[-.]/_}"

# --- Prerequisites -----------------------------------------------------------
for tool in ffmpeg ffprobe; do
	command -v "$tool" >/dev/null || die "$tool not found: install ffmpeg (apt-get install ffmpeg, brew install ffmpeg)"
done
command -v "$KILN" >/dev/null || die "kiln binary '$KILN' not found: go build -o kiln ./cmd/kiln and set KILN=./kiln"
"$KILN" pool list >/dev/null || die "cannot reach the Kiln server: start it with 'kiln server' (and the same KILN_DATA_DIR)"
mkdir -p "$WORK_DIR/videos" "$WORK_DIR/package" "$WORK_DIR/output"
WORK_DIR=$(cd "$WORK_DIR" && pwd)

# --- 0. Input videos ------------------------------------------------------------
step "Generating ${#names[@]} test videos (640x360, ${VIDEO_SECONDS}s) in $WORK_DIR/videos"
for i in "${!names[@]}"; do
	n=${names[$i]}
	f=$WORK_DIR/videos/$n.mp4
	[[ -s $f ]] && continue
	# Camera-like originals: high bitrate (noise does not compress).
	ffmpeg -hide_banner -loglevel error -nostdin -y \
		-f lavfi -i "$n=duration=$VIDEO_SECONDS:size=640x360:rate=25" \
		-f lavfi -i "sine=frequency=${freqs[$i]}:duration=$VIDEO_SECONDS" -shortest \
		-vf noise=alls=12:allf=t -pix_fmt yuv420p -c:v libx264 -preset veryfast -crf 20 \
		-c:a aac -b:a 128k "$f.tmp.mp4"
	mv "$f.tmp.mp4" "$f"
done
ls -l "$WORK_DIR/videos"

# --- 1. Upload the input files to storage ---------------------------------------
step "1. Uploading the videos to storage container '$INPUT_CONTAINER'"
existing=$("$KILN" storage container list -o json)
for c in "$INPUT_CONTAINER" "$OUTPUT_CONTAINER"; do
	if grep -q "\"name\": \"$c\"" <<<"$existing"; then
		echo "container $c exists"
	else
		kiln storage container create "$c"
	fi
done
# Outputs of an earlier run go, so that the check at the end sees only this
# run's.
mapfile -t stale < <("$KILN" storage list --container "$OUTPUT_CONTAINER" -o json | grep -o '"name": "[^"]*_small\.mp4"' | cut -d'"' -f4 || true)
if ((${#stale[@]})); then
	kiln storage delete --container "$OUTPUT_CONTAINER" "${stale[@]}"
fi
rm -f "$WORK_DIR"/output/*_small.mp4
kiln storage upload "$WORK_DIR"/videos/*.mp4 --container "$INPUT_CONTAINER"
kiln storage list --container "$INPUT_CONTAINER"

# --- 2. Upload the application -------------------------------------------------
step "2. Packaging transcode.sh as application $APP_ID $APP_VERSION"
rm -f "$WORK_DIR/package/$APP_ID.zip"
cp "$HERE/transcode.sh" "$WORK_DIR/package/transcode.sh"
chmod 755 "$WORK_DIR/package/transcode.sh"
if command -v zip >/dev/null; then
	(cd "$WORK_DIR/package" && zip -q "$APP_ID.zip" transcode.sh)
elif command -v python3 >/dev/null; then
	(cd "$WORK_DIR/package" && python3 -m zipfile -c "$APP_ID.zip" transcode.sh)
else
	die "zip or python3 is needed to build the application package"
fi
kiln application create "$APP_ID" --display-name "ffmpeg transcoder"
kiln application package upload "$APP_ID" "$APP_VERSION" "$WORK_DIR/package/$APP_ID.zip" --default

# --- 3. Create the pool -----------------------------------------------------------
step "3. Creating pool $POOL_ID: $NODES nodes, $SLOTS task slots each, start task checks ffmpeg"
# The start task runs on every node as it joins, as admin (as in the Azure
# tutorial, where it installs ffmpeg with apt-get). Tasks wait for it.
start_cmd="/bin/sh -c 'if command -v ffmpeg >/dev/null; then ffmpeg -version | head -n 1; elif [ \$(id -u) -eq 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; else echo ffmpeg is missing on node \$AZ_BATCH_NODE_ID and cannot be installed without root and apt-get: run apt-get install ffmpeg >&2; exit 1; fi'"
cat >"$WORK_DIR/pool.json" <<EOF
{
  "id": "$POOL_ID",
  "vmSize": "standard_d2s_v3",
  "virtualMachineConfiguration": {
    "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts", "version": "latest"},
    "nodeAgentSKUId": "batch.node.ubuntu 22.04"
  },
  "targetDedicatedNodes": $NODES,
  "taskSlotsPerNode": $SLOTS,
  "startTask": {
    "commandLine": "$start_cmd",
    "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
    "waitForSuccess": true
  }
}
EOF
if "$KILN" pool show --pool-id "$POOL_ID" >/dev/null 2>&1; then
	echo "pool $POOL_ID exists: using it"
else
	kiln pool create --json-file "$WORK_DIR/pool.json"
fi

# Wait until the nodes are ready; a failed start task stops the script
# (tasks would otherwise wait forever for a node).
echo "waiting for $NODES nodes to finish their start task..."
deadline=$((SECONDS + NODE_WAIT))
while :; do
	states=$("$KILN" node list --pool-id "$POOL_ID" --select id,state -o json | grep -o '"state": "[a-z]*"' | cut -d'"' -f4 || true)
	ready=$(grep -cE '^(idle|running)$' <<<"$states" || true)
	if grep -qE '^(starttaskfailed|unusable)$' <<<"$states"; then
		"$KILN" node list --pool-id "$POOL_ID"
		for node in $("$KILN" node list --pool-id "$POOL_ID" --filter "state eq 'starttaskfailed'" --select id -o json | grep -o '"id": "[^"]*"' | cut -d'"' -f4); do
			echo "--- start task stderr on $node:" >&2
			"$KILN" node file download --pool-id "$POOL_ID" --node-id "$node" --file-path startup/stderr.txt --destination - >&2 || true
		done
		die "the start task failed on a node of pool $POOL_ID (stderr above)"
	fi
	((ready >= NODES)) && break
	((SECONDS < deadline)) || die "nodes of pool $POOL_ID not ready after ${NODE_WAIT}s"
	sleep 0.5
done
kiln node list --pool-id "$POOL_ID"

# --- 4. Create the job ------------------------------------------------------------
step "4. Creating job $JOB_ID"
if "$KILN" job show --job-id "$JOB_ID" >/dev/null 2>&1; then
	kiln job delete --job-id "$JOB_ID" --yes
	deadline=$((SECONDS + NODE_WAIT))
	while "$KILN" job show --job-id "$JOB_ID" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "job $JOB_ID still exists ${NODE_WAIT}s after its deletion"
		sleep 0.5
	done
fi
kiln job create --id "$JOB_ID" --pool-id "$POOL_ID"

# --- 5. Add the tasks ---------------------------------------------------------------
step "5. Adding one task per video"
# Tasks upload their outputs with a container URL signed for writing (as
# the tutorial's get_container_sas_url with write permission).
output_url=$("$KILN" storage url --container "$OUTPUT_CONTAINER" --permissions rwcl --expiry 2h)
echo "\$ kiln storage url --container $OUTPUT_CONTAINER --permissions rwcl --expiry 2h"
echo "${output_url%%\?*}?<SAS>"
tasks=()
for n in "${names[@]}"; do
	tasks+=("$(
		cat <<EOF
  {
    "id": "$(task_id "$n")",
    "commandLine": "/bin/sh -c '\"\$$app_dir_var/transcode.sh\" input/$n.mp4 ${n}_small.mp4'",
    "resourceFiles": [{"autoStorageContainerName": "$INPUT_CONTAINER", "blobPrefix": "$n.mp4", "filePath": "input"}],
    "applicationPackageReferences": [{"applicationId": "$APP_ID", "version": "$APP_VERSION"}],
    "outputFiles": [{
      "filePattern": "*_small.mp4",
      "destination": {"container": {"containerUrl": "$output_url"}},
      "uploadOptions": {"uploadCondition": "taskSuccess"}
    }]
  }
EOF
	)")
done
{
	echo "["
	for i in "${!tasks[@]}"; do
		((i == 0)) || echo ","
		printf '%s' "${tasks[$i]}"
	done
	printf '\n]\n'
} >"$WORK_DIR/tasks.json"
kiln task create --job-id "$JOB_ID" --json-file "$WORK_DIR/tasks.json"

# --- 6. Monitor the tasks and retrieve the output ----------------------------------
step "6. Waiting for the tasks, then downloading container '$OUTPUT_CONTAINER'"
if ! kiln job wait --job-id "$JOB_ID" --fail-on-task-failure --timeout "$TIMEOUT"; then
	"$KILN" task list --job-id "$JOB_ID" || true
	for t in $("$KILN" task list --job-id "$JOB_ID" --filter "executionInfo/result eq 'failure'" --select id -o json | grep -o '"id": "[^"]*"' | cut -d'"' -f4); do
		echo "--- failed task $t:" >&2
		"$KILN" task show --job-id "$JOB_ID" --task-id "$t" >&2 || true
		echo "--- its stderr.txt:" >&2
		"$KILN" task file download --job-id "$JOB_ID" --task-id "$t" --file-path stderr.txt --destination - >&2 || true
	done
	die "tasks of job $JOB_ID failed (details above)"
fi
kiln task list --job-id "$JOB_ID"
kiln storage list --container "$OUTPUT_CONTAINER"
kiln storage download "$WORK_DIR/output" --container "$OUTPUT_CONTAINER"

step "Results in $WORK_DIR/output"
printf '%-12s %10s %10s %6s %s\n' VIDEO ORIGINAL TRANSCODED RATIO RESOLUTION
ok=true
for n in "${names[@]}"; do
	in=$WORK_DIR/videos/$n.mp4
	out=$WORK_DIR/output/${n}_small.mp4
	if [[ ! -s $out ]]; then
		printf '%-12s %10s %10s\n' "$n" "$(wc -c <"$in")" missing
		ok=false
		continue
	fi
	res=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=s=x:p=0 "$out")
	insize=$(wc -c <"$in")
	outsize=$(wc -c <"$out")
	printf '%-12s %10s %10s %5s%% %s\n' "$n" "$insize" "$outsize" "$((outsize * 100 / insize))" "$res"
	[[ $res == 320x180 ]] || ok=false
	((outsize < insize)) || ok=false
done
$ok || die "some videos were not transcoded to a smaller 320x180 file"
echo "All ${#names[@]} videos transcoded to 320x180."

if $cleanup; then
	step "Cleaning up"
	kiln job delete --job-id "$JOB_ID" --yes
	kiln pool delete --pool-id "$POOL_ID" --yes
	kiln application delete "$APP_ID" --yes
	kiln storage container delete "$INPUT_CONTAINER"
	kiln storage container delete "$OUTPUT_CONTAINER"
fi
