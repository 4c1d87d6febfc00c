#!/usr/bin/env bash
# The warm start of scoreboards/specs/gsm8k-warm.toml (docs/gsm8k_cpu.md): the char-level
# `cpu-rope` student trained by supervised log-loss (bc-clean, eta = 0) on the clean reference
# solutions of GSM-8K train's 1,125 short problems (question <= 255 characters, solution + EOS
# <= 128). Two stages (the second continues from the first with init_checkpoint): 6 epochs at
# lr 3e-3, then 14 at 2e-3, cosine each. Writes results/gsm8k-warm{,2}/ (not committed); the spec
# reads results/gsm8k-warm2/ck/last.pt. Run from the repository root with the data at hand:
#   NEG_GSM8K_DIR=/path/to/gsm8k bash benchmarks/gsm8k_warm_start.sh
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
NEG="${NEG:-neg}"
COMMON=(--algo bc-clean --env NoisyGSM8K-v1 --env-kw split=train --env-kw max_prompt_tokens=256
        --env-kw max_new_tokens=128 --env-kw eta=0.0 --env-kw law=absorbing --preset cpu-rope
        --budget 1125 --batch-size 32 --schedule cosine --device cpu --eval-every 1125
        --eval-prompts 128 --no-progress)
mkdir -p results/gsm8k-warm results/gsm8k-warm2
# Stage 1 (evaluated on the test split's short problems).
"$NEG" train "${COMMON[@]}" --algo-kw epochs=6 --lr 3e-3 --eval-env-kw split=test \
    --checkpoint-dir results/gsm8k-warm/ck --out results/gsm8k-warm/result.json
# Stage 2 (evaluated on held-out draws of the training problems).
"$NEG" train "${COMMON[@]}" --algo-kw epochs=14 --lr 2e-3 --init-checkpoint results/gsm8k-warm/ck/last.pt \
    --checkpoint-dir results/gsm8k-warm2/ck --out results/gsm8k-warm2/result.json
