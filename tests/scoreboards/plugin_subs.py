"""A plugin algorithm as a board submission, for the tests: the shipped example through the adapter."""

from __future__ import annotations

from scoreboards.leaderboard.builtin import algorithm_submission

ModeBCSubmission = algorithm_submission("agents.examples.mode_bc:ModeBC",
                                        train={"preset": "tiny", "batch_size": 64, "device": "cpu"})
