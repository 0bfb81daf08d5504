"""The two pictures stored in a trained bundle: confusion_matrix.png and training_curve.png."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402

CONFUSION_MATRIX = "confusion_matrix.png"
TRAINING_CURVE = "training_curve.png"


def confusion_matrix(metrics: dict, folder) -> Path:
    labels = metrics["confusion_matrix"]["labels"]
    matrix = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    size = min(12, 2.5 + 0.6 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"validation accuracy {metrics['accuracy']:.3f}")
    peak = max(1, max(max(row) for row in matrix))
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    fig.tight_layout()
    path = Path(folder) / CONFUSION_MATRIX
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_curve(train_loss: list, val_loss: list, folder) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(train_loss) + 1), train_loss, marker="o", label="training (mean per epoch)")
    if val_loss:
        ax.plot(range(1, len(val_loss) + 1), val_loss, marker="s", label="validation (end of epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (negative log-likelihood)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(folder) / TRAINING_CURVE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
