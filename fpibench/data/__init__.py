"""Real data sets for the benchmark: Bibtex, DnCNN image sets, Flying Chairs, CIFAR-10, digits.

Files live under the data dir (:func:`data_dir`: ``--data-dir`` / :func:`set_data_dir`,
``$FPIBENCH_DATA``, else ``~/.cache/fpibench``) with the layout ``bibtex/``,
``dncnn/Train400``, ``dncnn/BSD68``, ``dncnn/Set12``, ``flyingchairs_examples/``,
``cifar10/`` (the binary release's archive); scikit-learn's digits need no file.  Missing
files are downloaded from their canonical sources and checked against the sha256 digests in
``manifest.txt``; nothing is ever replaced by synthetic data.

    X, Y = load_bibtex("train")                 # (4880, 1836), (4880, 159)
    train = load_image_set("train400")          # 400 x (180, 180) float32 in [0, 255]
    img0, img1, flow = load_chairs_examples()[0]
    images, labels = load_cifar10("test")       # (10000, 3, 32, 32) uint8, (10000,)
"""
from ._datadir import (
    CorruptDataError,
    DataFormatError,
    DataNotFoundError,
    data_dir,
    default_cache_dir,
    set_data_dir,
)
from ._download import (
    DATASETS,
    ManifestEntry,
    dataset_files,
    dataset_folder,
    download_file,
    ensure_dataset,
    file_sha256,
    source_url,
    verify_dataset,
)
from .bibtex import load_bibtex, read_arff_sparse
from .cifar10 import load_cifar10, read_batch_file, write_batch_file
from .chairs import FlyingChairs, center_crop, chairs_denoising_crops, load_chairs_examples, read_split_list
from .digits import load_digits
from .flow import read_flo, write_flo
from .images import IMAGE_SETS, load_image_set, read_gray_image, read_ppm, rgb_to_gray

__all__ = [
    "data_dir", "set_data_dir", "default_cache_dir",
    "DataNotFoundError", "CorruptDataError", "DataFormatError",
    "DATASETS", "ManifestEntry", "dataset_files", "dataset_folder", "source_url",
    "ensure_dataset", "verify_dataset", "download_file", "file_sha256",
    "read_arff_sparse", "load_bibtex",
    "read_gray_image", "load_image_set", "rgb_to_gray", "read_ppm", "IMAGE_SETS",
    "read_flo", "write_flo",
    "load_cifar10", "read_batch_file", "write_batch_file", "load_digits",
    "FlyingChairs", "load_chairs_examples", "chairs_denoising_crops", "center_crop", "read_split_list",
]
