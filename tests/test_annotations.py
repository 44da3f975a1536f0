"""Annotations that mypy checks, held at run time: the types the code is called with are the types it declares
(mypy said "incompatible default" for `dtype=np.float32`, a `FaceCrop` returned where a `CropFn` gave an array, an
argument group passed where a parser was declared)."""

from __future__ import annotations

import argparse
import typing

import numpy as np
from numpy.typing import DTypeLike

from edge_ser.cli import common
from edge_ser.features import filters
from edge_ser.inputs import av
from edge_ser.vision.face import FaceCrop


def test_filter_banks_take_any_dtype_like() -> None:
    for fn in (filters.mel, filters.chroma, filters.dct_matrix, filters.window):
        assert typing.get_type_hints(fn)["dtype"] == DTypeLike, fn.__name__
    assert filters.window("hann", 8, 8, dtype=np.float64).dtype == np.float64  # a type, as the default is


def test_a_crop_function_may_return_a_face_crop() -> None:
    assert typing.get_args(av.CropFn)[1] == FaceCrop | np.ndarray


def test_the_shared_options_go_on_a_parser_or_an_argument_group() -> None:
    group = argparse.ArgumentParser().add_argument_group("model")
    for fn in (common.add_engine_args, common.add_enroll_arg, common.add_speaker_file_arg):
        assert isinstance(group, typing.get_args(typing.get_type_hints(fn)["p"])), fn.__name__
        fn(argparse.ArgumentParser().add_argument_group("g"))
