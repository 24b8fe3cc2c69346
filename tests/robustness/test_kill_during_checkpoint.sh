#!/usr/bin/env bash
# A process killed (SIGKILL) at random moments while it writes checkpoints, 20 times: after
# every kill the latest checkpoint loads, leftover temporaries are removed at the next start,
# and training resumes; at the end the run completes.
source "$(dirname "$0")/../cli/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
# A 3.7M-parameter model saved after every step: most of the wall time is spent writing
# checkpoints (~45 MB each with Adam's two buffers), so most kills land inside a write.
args=(train --config "$cfg" --run-dir "$WORK/run" --resume auto --set 'model.layers=[784, 2048, 1024, 10]'
      --set checkpoint.every_steps=1 --set checkpoint.keep=2 --set train.max_steps=400 --set train.progress=false
      --set data.val_size=0 --set data.test_images= --set data.test_labels=)
ck="$WORK/run/checkpoints"
kills=0
for i in $(seq 1 20); do
  "$LOCKSTEP" "${args[@]}" >"$WORK/log.$i" 2>&1 &
  pid=$!
  # Random moment between 1.5 s and 3.5 s: past start-up and data loading, inside the step loop.
  sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 1.5 + 2 * rand() }')"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  if [ -f "$ck/latest" ]; then
    run 1 30 inspect "$ck"
    expect_rc 0 "latest checkpoint after kill $i does not load"
  fi
done
[ "$kills" -ge 15 ] || fail "only $kills of 20 runs were still running when killed"
ls "$ck" | grep -q "\.tmp" && echo "(temporaries present after the last kill, as expected: $(ls "$ck" | grep -c tmp))"
# The final run cleans temporaries, resumes, and completes a few more steps.
run 1 30 inspect "$ck"
expect_rc 0 "no loadable checkpoint after 20 kills"
at=$(grep -o "global step [0-9]*" <<<"$OUT" | grep -o "[0-9]*$")
run 1 300 "${args[@]}" --set train.max_steps=$((at + 3))
expect_rc 0
expect_out "resuming from"
expect_out "done: $((at + 3)) steps"
ls "$ck" | grep -q "\.tmp" && fail "temporaries left after a clean run: $(ls "$ck")"
echo "ok ($kills kills)"
