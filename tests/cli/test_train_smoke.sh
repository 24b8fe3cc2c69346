#!/usr/bin/env bash
# `lockstep train` end to end on real Fashion-MNIST on 2 ranks for a short run: exit 0, the
# epoch line and final accuracy are printed, the run directory holds the resolved config and
# metrics.jsonl with sensible values, and the resolved config loads back as a config.
source "$(dirname "$0")/lib.sh"

run 2 120 train --config "$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml" --run-dir "$WORK/run" \
  --set train.max_steps=60 --set train.progress=false
expect_rc 0
expect_out "784-256-128-10 relu MLP (235146 parameters)"
expect_out "2 rank(s)"
expect_out "final test accuracy"
[ -f "$WORK/run/config.toml" ] || fail "no config.toml in the run directory"
[ "$(wc -l <"$WORK/run/metrics.jsonl")" -eq 1 ] || fail "expected one metrics line"
# 60 Adam steps on this MLP reach well above chance (0.1); 0.6 is a loose floor that a broken
# gradient, allreduce or data path would not reach.
python3 - "$WORK/run/metrics.jsonl" <<'PY'
import json, sys
m = json.loads(open(sys.argv[1]).read().splitlines()[0])
assert m["step"] == 60, m
assert 0.6 < m["test_accuracy"] <= 1.0, m
assert 0.6 < m["val_accuracy"] <= 1.0, m
assert m["train_loss"] > 0 and m["samples_per_second"] > 0, m
PY
# The resolved config is a complete config: it loads and trains (1 step) as it is.
run 1 60 train --config "$WORK/run/config.toml" --run-dir "$WORK/run2" --set train.max_steps=1
expect_rc 0
grep -q 'max_steps = 60' "$WORK/run/config.toml" || fail "resolved config lacks the override"
echo "ok"
