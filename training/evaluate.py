"""Validation metrics: accuracy, per-class precision/recall, confusion matrix (rows = true class)."""
import numpy as np


def evaluate(true_index: np.ndarray, probabilities: np.ndarray, labels: list) -> dict:
    """Metrics of the top-1 predictions; JSON-ready (stored in the bundle manifest)."""
    n = len(labels)
    predicted = probabilities.argmax(axis=1)
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (true_index, predicted), 1)
    per_class = {}
    for i, label in enumerate(labels):
        predicted_i, actual_i = int(matrix[:, i].sum()), int(matrix[i, :].sum())
        per_class[label] = {
            "precision": round(matrix[i, i] / predicted_i, 4) if predicted_i else None,
            "recall": round(matrix[i, i] / actual_i, 4) if actual_i else None,
            "support": actual_i,
        }
    accuracy = float(np.trace(matrix) / max(1, matrix.sum()))
    return {"accuracy": round(accuracy, 4), "validation_images": int(matrix.sum()),
            "per_class": per_class, "confusion_matrix": {"labels": list(labels), "rows_true_columns_predicted":
                                                          matrix.tolist()}}


def report(metrics: dict) -> str:
    """The metrics as a few lines of text for the terminal."""
    labels = metrics["confusion_matrix"]["labels"]
    matrix = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    width = max(9, *(len(label) for label in labels))
    fmt = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731
    lines = [f"validation accuracy {metrics['accuracy']:.4f} on {metrics['validation_images']} image(s)",
             f"{'class':<{width}}  precision  recall  support"]
    for label in labels:
        row = metrics["per_class"][label]
        lines.append(f"{label:<{width}}  {fmt(row['precision']):>9}  {fmt(row['recall']):>6}  {row['support']:>7}")
    lines.append("confusion matrix (rows: true class, columns: predicted)")
    lines.append(" " * width + "  " + "  ".join(f"{label[:8]:>8}" for label in labels))
    for label, row in zip(labels, matrix):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{count:>8}" for count in row))
    return "\n".join(lines)
