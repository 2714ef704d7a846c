"""Input checks shared by every public function.

Each checker returns a clean array or raises ``TypeError``/``ValueError`` with a
message that names the argument, says what was received and what is expected.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "check_image",
    "check_images",
    "check_instance_map",
    "check_class_map",
    "check_prediction",
    "check_same_shape",
    "check_mask",
    "check_count",
]

_STACK_HINT = "To process a stack of images, pass a list of 2-D images."


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__}"


def _as_array(value, name):
    if value is None:
        raise TypeError(f"{name} must be a numpy array; got None.")
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"{name} must be a numpy array; got the string {value!r}. "
            "To read a file, use particleseg.io.imread(path) first."
        )
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise TypeError(
            f"{name} must be a numpy array; got {_describe(value)} that cannot be "
            f"converted ({exc})."
        ) from None
    if arr.dtype == object:
        raise TypeError(
            f"{name} must be a numeric numpy array; got an object array "
            f"(shape {arr.shape}). {_STACK_HINT}"
        )
    return arr


def _reduce_channels(arr, name):
    """Reduce (H, W, 1), (H, W, 3) or (H, W, 4) to (H, W), keeping the dtype."""
    channels = arr.shape[-1]
    if channels == 1:
        return arr[..., 0]
    rgb = arr[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    # ITU-R BT.709 luminance, the same weights as skimage.color.rgb2gray, kept
    # in the input's own scale and dtype.
    weights = np.array([0.2125, 0.7154, 0.0721])
    gray = rgb.astype(np.float64) @ weights
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        gray = np.clip(np.rint(gray), info.min, info.max)
    return gray.astype(arr.dtype)


def check_image(image, name: str = "image") -> np.ndarray:
    """Validate one micrograph and return it as a 2-D array.

    Accepted: a 2-D array (H, W) of an integer or floating dtype, or
    (H, W, 1) / RGB (H, W, 3) / RGBA (H, W, 4), which are reduced to one
    channel (equal channels are taken as they are, others are converted to
    luminance).
    """
    arr = _as_array(image, name)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            f"{name} must have an integer (uint8, uint16, ...) or floating dtype; "
            f"got dtype {arr.dtype}. Convert it, e.g. {name}.astype(np.float32)."
        )
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        arr = _reduce_channels(arr, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (H, W), (H, W, 1) or RGB (H, W, 3); got shape "
            f"{arr.shape}. {_STACK_HINT}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one pixel.")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite pixel(s); expected finite values. "
            f"Replace them first, e.g. np.nan_to_num({name})."
        )
    return arr


def check_images(X, name: str = "X") -> tuple[list[np.ndarray], bool]:
    """Validate one image or a collection of images.

    Returns
    -------
    images : list of ndarray
        The validated 2-D images.
    single : bool
        True when ``X`` was one 2-D image (the caller then returns one result,
        not a list).
    """
    if isinstance(X, np.ndarray):
        if X.ndim == 2 or (X.ndim == 3 and X.shape[-1] in (1, 3, 4) and X.shape[0] > 4):
            return [check_image(X, name)], True
        if X.ndim == 3:
            return [check_image(x, f"{name}[{i}]") for i, x in enumerate(X)], False
        raise ValueError(
            f"{name} must be one 2-D image (H, W) or a list of 2-D images; got an "
            f"array of shape {X.shape}."
        )
    if X is None or isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
        raise TypeError(
            f"{name} must be a 2-D image or a list of 2-D images; got {_describe(X)}."
        )
    if len(X) == 0:
        raise ValueError(f"{name} is an empty list; expected at least one image.")
    return [check_image(x, f"{name}[{i}]") for i, x in enumerate(X)], False


def _check_label_dtype(arr, name, kind):
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        hint = ""
        if arr.dtype == bool:
            hint = " For a boolean mask, label it first with skimage.measure.label(mask)."
        elif np.issubdtype(arr.dtype, np.floating):
            hint = f" Convert it with {name}.astype(np.int32) if its values are whole numbers."
        raise TypeError(
            f"{name} must be an integer {kind} map; got dtype {arr.dtype}.{hint}"
        )


def _check_2d_map(arr, name, kind):
    """Raise unless ``arr`` is a non-empty 2-D ``kind`` (e.g. "instance map")."""
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D {kind} (H, W); got shape {arr.shape}. {_STACK_HINT}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one pixel.")


def _check_not_negative(arr, name, what, expected, lowest=0):
    """Raise when an integer map holds values below ``lowest`` (negative ``what``)."""
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < lowest:
        raise ValueError(f"{name} contains negative {what} (minimum {arr.min()}); {expected}")


def check_instance_map(labels, name: str = "labels", allow_unlabelled: bool = False) -> np.ndarray:
    """Validate an instance map: 2-D integers, 0 background, k > 0 particle k.

    With ``allow_unlabelled``, -1 is accepted too: pixels nobody labelled
    (training skips them).
    """
    arr = _as_array(labels, name)
    _check_label_dtype(arr, name, "instance")
    _check_2d_map(arr, name, "instance map")
    unlabelled = " (and -1 for unlabelled pixels)" if allow_unlabelled else ""
    _check_not_negative(arr, name, "labels", "an instance map has 0 for background and 1, 2, "
                        f"... for particles{unlabelled}.", lowest=-1 if allow_unlabelled else 0)
    return arr


def check_mask(mask, name: str = "mask") -> np.ndarray:
    """Validate a map whose foreground is ``value > 0``.

    Accepted: a 2-D boolean mask, class map or instance map (any integer
    dtype, no negative values). Floating arrays (probabilities) are refused:
    threshold them first.
    """
    arr = _as_array(mask, name)
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        hint = ""
        if np.issubdtype(arr.dtype, np.floating):
            hint = (
                f" For probabilities, threshold them first, e.g. {name} >= 0.5; for "
                f"whole-number labels stored as floats, use {name}.astype(np.int32)."
            )
        raise TypeError(
            f"{name} must be a boolean mask, a class map or an instance map (bool or "
            f"integer dtype); got dtype {arr.dtype}.{hint}"
        )
    _check_2d_map(arr, name, "map")
    _check_not_negative(arr, name, "values", "expected 0 for background and positive values "
                        "for particles.")
    return arr


def check_count(count, name: str = "count") -> int:
    """Validate a number of particles: a whole number, 0 or more."""
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise TypeError(
            f"{name} must be a whole number of particles (int); got {count!r}."
        )
    if count < 0:
        raise ValueError(f"{name} must be 0 or more particles; got {count}.")
    return int(count)


def check_class_map(classes, name: str = "classes") -> np.ndarray:
    """Validate a class map: 2-D, values 0 background, 1 particle, 2 border."""
    arr = _as_array(classes, name)
    _check_label_dtype(arr, name, "class")
    _check_2d_map(arr, name, "class map")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 2:
        raise ValueError(
            f"{name} must be a class map with values 0 (background), 1 (particle) and "
            f"2 (border); got values from {lo} to {hi}. If these are instance labels, "
            "turn them into a class map with annotate_borders, or let the estimator "
            "do it (annotator=BorderAnnotator())."
        )
    return arr.astype(np.uint8, copy=False)


def check_prediction(pred, name: str = "pred") -> np.ndarray:
    """Validate a class map (H, W) or class probabilities (3, H, W).

    Returns the class map as uint8, or the probabilities as float32.
    """
    arr = _as_array(pred, name)
    if arr.ndim == 3:
        if arr.shape[0] != 3:
            raise ValueError(
                f"{name} must be a class map (H, W) or class probabilities (3, H, W); "
                f"got shape {arr.shape}."
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(
                f"{name} of shape (3, H, W) must hold float probabilities; got dtype "
                f"{arr.dtype}."
            )
        if arr.shape[1] == 0 or arr.shape[2] == 0:
            raise ValueError(f"{name} is empty (shape {arr.shape}).")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite probabilities.")
        return arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        return check_class_map(arr, name)
    raise ValueError(
        f"{name} must be a class map (H, W) or class probabilities (3, H, W); got "
        f"shape {arr.shape}. {_STACK_HINT}"
    )


def check_same_shape(image, labels, image_name="image", labels_name="labels"):
    """Raise when an image and its label map differ in shape."""
    if image.shape != labels.shape:
        raise ValueError(
            f"{labels_name} has shape {labels.shape} but {image_name} has shape "
            f"{image.shape}; each label map must have exactly the shape of its image."
        )
