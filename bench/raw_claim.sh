#!/bin/sh
# The baseline for a claim: the git work an ifcoord claim does, done by plain git commands.
# Fetch the branch into a private ref, edit the task's board (Status, Owner, Epoch), write the
# session's STATUS file and the dashboard as blobs, build the three trees with mktree, make the
# commit with commit-tree, and compare-and-swap it onto the remote with --force-with-lease.
#
# usage: raw_claim.sh GIT_DIR URL BRANCH BOARD_PATH TASK_ID SESSION
# BOARD_PATH is the board holding the task, e.g. boards/PHASE-0.md; no scheduling is done.
set -eu
export GIT_DIR="$1"
url=$2 branch=$3 board=$4 task=$5 session=$6
ref="refs/rawbench/$branch"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

git fetch -q --no-tags --no-write-fetch-head --no-auto-gc --no-recurse-submodules \
    "$url" "+refs/heads/$branch:$ref"
tip=$(git rev-parse "$ref")

# Blobs: the edited board, the session's status file, the dashboard.
board_blob=$(git cat-file blob "$tip:$board" | awk -v task="## $task:" -v who="$session" -v now="$now" '
    index($0, task) == 1 { inside = 1 }
    inside && /^\*\*Status:\*\* open/ {
        print "**Status:** in progress"; print "**Owner:** " who
        print "**Claimed at:** " now; print "**Epoch:** 1"; inside = 0; next
    }
    { print }' | git hash-object -w --stdin)
status_blob=$(printf 'session: %s\nstatus: working\ncurrent_task: %s\nepoch: 1\nprogress: 0\nmilestone: null\nblocked_on: null\nlast_poll: %s\n' \
    "$session" "$task" "$now" | git hash-object -w --stdin)
dash_blob=$( { git cat-file blob "$tip:boards/README.md" 2>/dev/null || true; echo "- $task: $session"; } \
    | git hash-object -w --stdin)

# Trees, bottom up.
board_name=${board#boards/}
boards_tree=$(git ls-tree "$tip:boards" \
    | awk -v a="$board_name" -v b="README.md" -F '\t' '$2 != a && $2 != b' \
    | { cat; printf '100644 blob %s\t%s\n100644 blob %s\tREADME.md\n' "$board_blob" "$board_name" "$dash_blob"; } \
    | git mktree)
status_tree=$(git ls-tree "$tip:status" \
    | awk -v a="$session.yaml" -F '\t' '$2 != a' \
    | { cat; printf '100644 blob %s\t%s.yaml\n' "$status_blob" "$session"; } \
    | git mktree)
root_tree=$(git ls-tree "$tip" \
    | awk -F '\t' '$2 != "boards" && $2 != "status"' \
    | { cat; printf '040000 tree %s\tboards\n040000 tree %s\tstatus\n' "$boards_tree" "$status_tree"; } \
    | git mktree)

commit=$(printf 'ifcoord: claim %s by %s\n\nIfcoord-Op: claim\nIfcoord-Task: %s\nIfcoord-Session: %s\n' \
    "$task" "$session" "$task" "$session" \
    | GIT_AUTHOR_NAME="$session" GIT_AUTHOR_EMAIL="$session@ifcoord.invalid" \
      GIT_COMMITTER_NAME="$session" GIT_COMMITTER_EMAIL="$session@ifcoord.invalid" \
      git commit-tree "$root_tree" -p "$tip")

git push -q --porcelain --no-verify "--force-with-lease=refs/heads/$branch:$tip" \
    "$url" "$commit:refs/heads/$branch" >/dev/null
git update-ref "$ref" "$commit"
echo "$commit"
