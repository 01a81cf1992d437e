"""Named sweep files shipped with fpibench: ``fpibench run --sweep paper-box`` reads ``paper-box.toml``."""
from pathlib import Path

FOLDER = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.toml"))


def path(name: str) -> Path:
    return FOLDER / f"{name}.toml"
