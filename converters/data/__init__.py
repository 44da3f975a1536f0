"""Data sets for training: loaders for each corpus into one Record type, shared labels, splits and a
synthetic data set that lets everything run without downloads."""

from converters.data.labels import LABELS, class_order, label_index, to_label
from converters.data.loaders import (
    LOADERS,
    default_data_root,
    find_dataset,
    load_cremad,
    load_dataset,
    load_emodb,
    load_fer2013,
    load_folder,
    load_labels_csv,
    load_ravdess,
    load_savee,
    load_tess,
    load_video_folder,
)
from converters.data.records import Record, summarize
from converters.data.scan import DatasetWarning
from converters.data.splits import (
    Split,
    group_kfold,
    leave_one_speaker_out,
    speaker_group_folds,
    stratified_kfold,
    stratified_split,
)
from converters.data.synthetic import SyntheticSpec, generate, load_synthetic, write

__all__ = [
    "LABELS",
    "LOADERS",
    "DatasetWarning",
    "Record",
    "Split",
    "SyntheticSpec",
    "class_order",
    "default_data_root",
    "find_dataset",
    "generate",
    "group_kfold",
    "label_index",
    "leave_one_speaker_out",
    "load_cremad",
    "load_dataset",
    "load_emodb",
    "load_fer2013",
    "load_folder",
    "load_labels_csv",
    "load_ravdess",
    "load_savee",
    "load_video_folder",
    "load_synthetic",
    "load_tess",
    "speaker_group_folds",
    "stratified_kfold",
    "stratified_split",
    "summarize",
    "to_label",
    "write",
]
