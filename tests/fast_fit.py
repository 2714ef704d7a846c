"""The settings of a fast fit shared by the estimator tests.

One epoch of 64x64 crops on the CPU backbone, without augmentation, seeded:
seconds on a CPU, and the same model every time.
"""

FAST = dict(
    backbone="mobilenet_v3_large",
    max_epochs=1,
    crop_size=64,
    batch_size=2,
    augment=None,
    device="cpu",
    random_state=0,
)
