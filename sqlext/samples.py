"""Real sample photos that ship inside installed wheels (nothing is downloaded)."""
import importlib.util
import shutil
from pathlib import Path

# (package, path inside the package, file name to copy to, what it shows)
PHOTOS = [
    ("skimage", "data/chelsea.png", "chelsea_cat.png", "a tabby cat"),
    ("skimage", "data/coffee.png", "coffee.png", "a cup of espresso"),
    ("skimage", "data/astronaut.png", "astronaut.png", "astronaut Eileen Collins"),
    ("skimage", "data/rocket.jpg", "rocket.jpg", "a rocket on its launch pad"),
    ("sklearn", "datasets/images/china.jpg", "china.jpg", "a Chinese temple"),
    ("sklearn", "datasets/images/flower.jpg", "flower.jpg", "a daisy-like flower"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "grace_hopper.jpg", "Grace Hopper in uniform"),
]


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (make setup installs it)")
    return Path(list(spec.submodule_search_locations)[0])


def copy_sample_photos(dest) -> list:
    """Copy the sample photos into ``dest``; return the copied paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for package, inner, name, _ in PHOTOS:
        target = dest / name
        if not target.exists():
            shutil.copyfile(_package_dir(package) / inner, target)
        copied.append(target)
    return copied
