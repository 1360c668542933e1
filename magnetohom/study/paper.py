"""The paper's reported numbers, as constants, each with the place it is printed.

Aldakheel, Soyarslan, Palanisamy, Elsayed, *Machine learning aided multiscale magnetostatics*
(2023), Section 5. These are the paper's values, shown beside ours in the report; nothing of ours
is derived from them. MAPE in percent.
"""

from __future__ import annotations

__all__ = ["PAPER"]

PAPER = {
    "table2": {
        "source": "paper, Table 2 and Sec. 5.1.1",
        "mape": {"mu11": 1.0, "mu22": 1.0},
        "r2": {"mu11": 0.994, "mu22": 0.991},
        "n_samples": 5500,
        "n_test": 825,
        "resolution": 256,
        "radius": 8,
        "epochs": 300,
        "train_minutes": 10.0,
        "hardware": "NVIDIA Tesla P100 16 GB (Google Colab)",
    },
    "table3": {
        "source": "paper, Table 3",
        "n_images": 100,
        "fem_seconds": 40.0,
        "cnn_seconds": 0.05,
    },
    "table4": {
        "source": "paper, Table 4 (non-overlapping polydisperse disks); Fig. 12 (overlapping "
        "monodisperse) gives no numbers in the text",
        "class": "poly",
        "epochs": 100,
        "transfer": {"mape": {"mu11": 2.0, "mu22": 2.0}, "r2": {"mu11": 0.99, "mu22": 0.99}},
        "scratch": {"mape": {"mu11": 6.0, "mu22": 5.5}, "r2": {"mu11": 0.97, "mu22": 0.97}},
    },
    "threed": {
        "source": "paper, Sec. 5.2",
        "mape": {"mu11": 0.8},
        "r2": {"mu11": 0.997},
        "n_samples": 2500,
        "resolution": 101,
        "radius": 5,
        "epochs": 300,
        "train_minutes": 30.0,
        "fem_minutes_per_sve": 15.0,
    },
}
