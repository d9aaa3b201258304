"""The training configuration: the CLI's options, frozen, with the recipe's schedule derived."""

from __future__ import annotations

import dataclasses

import pytest

from model.train import parse_config


def test_from_scratch_defaults_are_the_cpu_recipe():
    config = parse_config([])
    assert (config.img_size, config.epochs, config.max_minutes) == (32, 30, 17.0)
    assert not config.pretrained
    assert dataclasses.astuple(config.schedule) == (1e-3, 40, 0.85)
    assert config.total_epochs == 30
    # the held-out latest patients, the calibration split and the robustness recipe
    assert (config.shift_fraction, config.calib_fraction) == (0.12, 0.1)
    assert (config.intensity_augment, config.label_smoothing, config.patience) == (0.5, 0.05, 8)


def test_pretrained_fine_tunes_slowly_after_a_head_phase():
    config = parse_config(["--weights", "imagenet", "--epochs", "5"])
    assert dataclasses.astuple(config.schedule) == (1e-5, 10_000, 0.95)
    assert dataclasses.astuple(config.head_schedule) == (1e-3, 10_000, 0.95)
    assert config.total_epochs == 5 + 3


def test_options_given_win_over_the_recipe():
    config = parse_config(["--weights", "imagenet", "--lr", "2e-4", "--decay-rate", "0.5"])
    assert dataclasses.astuple(config.schedule) == (2e-4, 10_000, 0.5)


def test_a_step_cannot_change_the_config_only_derive_a_new_one():
    config = parse_config([])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0
    derived = dataclasses.replace(config, weights="imagenet")
    assert derived.schedule.learning_rate == 1e-5  # derived again, not carried over
    assert config.schedule.learning_rate == 1e-3
