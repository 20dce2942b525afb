"""BIDS input queries and BIDS-Derivatives output names.

Only this module talks to pybids. Output names keep the source image's
entities and add ``desc-`` (see docs/outputs.md).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from bids_app import __version__
from bids_app.io import atomic_write_json, atomic_write_text

LOGGER = logging.getLogger("facerisk")

NIFTI_EXTENSIONS = (".nii.gz", ".nii")

BIDSIGNORE = """\
# facerisk outputs that are not (yet) part of the BIDS specification
logs/
*/photo/
*/*/photo/
*/figures/
*/*/figures/
group_*
facerisk.html
sub-*.html
*/sub-*_facerisk.json
"""


class BIDSError(ValueError):
    """The input dataset cannot be used as asked (message names the reason)."""


@dataclass(frozen=True)
class AnatImage:
    """One anatomical image of one participant."""

    path: Path
    subject: str
    session: str | None
    suffix: str

    @property
    def stem(self) -> str:
        """File name without suffix and extension: ``sub-01_ses-1_acq-x``."""
        name = self.path.name
        for extension in NIFTI_EXTENSIONS:
            if name.endswith(extension):
                name = name[: -len(extension)]
                break
        return name[: -len(self.suffix) - 1] if name.endswith(f"_{self.suffix}") else name

    def relative_to(self, root: Path) -> str:
        return self.path.relative_to(root).as_posix()


def run_bids_validator(bids_dir: Path, timeout: float = 600) -> list[str]:
    """Run the BIDS validator (``bids-validator-deno``, offline); return its errors.

    Each returned line summarises one error code: ``CODE (n files): message;
    e.g. path``. Warnings are ignored. Raises :class:`BIDSError` when the
    validator itself cannot run.
    """
    import shutil
    import subprocess
    import sys

    executable = shutil.which("bids-validator-deno") or str(
        Path(sys.executable).parent / "bids-validator-deno"
    )
    if not Path(executable).exists():
        raise BIDSError(
            "bids-validator-deno is not installed (pip install bids-validator-deno); "
            "or pass --skip-bids-validator"
        )
    try:
        completed = subprocess.run(
            [executable, str(bids_dir), "--json"], capture_output=True, text=True, timeout=timeout
        )
        report = json.loads(completed.stdout)
    except (subprocess.TimeoutExpired, ValueError, OSError) as err:
        raise BIDSError(f"{bids_dir}: the BIDS validator failed to run ({err})") from err
    by_code: dict[str, list[dict]] = {}
    for issue in report.get("issues", {}).get("issues", []):
        if issue.get("severity") == "error":
            by_code.setdefault(issue.get("code", "ERROR"), []).append(issue)
    lines = []
    for code, issues in sorted(by_code.items()):
        example = next((i.get("location") for i in issues if i.get("location")), "")
        message = (issues[0].get("issueMessage") or "").strip().splitlines()
        text = f"{code} ({len(issues)} file{'s' if len(issues) > 1 else ''})"
        if message:
            text += f": {message[0][:120]}"
        if example:
            text += f"; e.g. {example}"
        lines.append(text)
    return lines


def load_layout(bids_dir: Path, database_dir: Path | None = None, validate: bool = True):
    """Index ``bids_dir`` with pybids; reuse the index in ``database_dir`` if given.

    ``validate`` turns on pybids' file-name validation (non-BIDS files are
    left out of the index rather than failing the run).
    """
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    indexer = BIDSLayoutIndexer(validate=validate, index_metadata=False)
    try:
        if database_dir is None:
            return BIDSLayout(bids_dir, derivatives=False, indexer=indexer)
        if not (database_dir / "layout_index.sqlite").is_file():
            _build_database(bids_dir, database_dir, indexer)
        else:
            LOGGER.debug("reusing the pybids index in %s", database_dir)
        return BIDSLayout(bids_dir, derivatives=False, database_path=database_dir)
    except BIDSError:
        raise
    except Exception as err:  # pybids raises many types; report them as one
        raise BIDSError(f"{bids_dir}: cannot index the BIDS dataset ({err})") from err


def _build_database(bids_dir: Path, database_dir: Path, indexer) -> None:
    """Index into a private folder, then move it into place: the first of many
    simultaneous jobs (SLURM array tasks) wins, the others use its index."""
    import shutil
    import tempfile

    from bids import BIDSLayout

    LOGGER.info("indexing %s into %s (pybids)", bids_dir, database_dir)
    database_dir.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f".{database_dir.name}.", dir=database_dir.parent))
    try:
        BIDSLayout(bids_dir, derivatives=False, indexer=indexer, database_path=private)
        try:
            private.rename(database_dir)  # atomic; fails if another job got there first
        except OSError:
            if not (database_dir / "layout_index.sqlite").is_file():
                raise BIDSError(
                    f"--bids-database-dir {database_dir} exists but holds no pybids index"
                ) from None
            LOGGER.debug("another job indexed %s first; reusing its index", bids_dir)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def select_subjects(layout, labels: list[str], exclude: list[str] | None = None) -> list[str]:
    """The participants to process: ``labels`` (all must exist) or all in the dataset,
    less ``exclude`` (labels that are not in the dataset are ignored there)."""
    available = sorted(layout.get_subjects())
    if not available:
        raise BIDSError(f"{layout.root}: no sub-<label> folders found")
    missing = [label for label in labels if label not in available]
    if missing:
        shown = ", ".join(f"sub-{label}" for label in available[:10])
        raise BIDSError(
            f"{layout.root}: participant(s) not found in the dataset: "
            + ", ".join(f"sub-{label}" for label in missing)
            + f" (it has {len(available)}: {shown}{', ...' if len(available) > 10 else ''})"
        )
    left_out = set(exclude or ())
    chosen = [label for label in (labels or available) if label not in left_out]
    if not chosen:
        raise BIDSError(f"{layout.root}: --participant-label-exclude leaves no participant")
    return chosen


# -- --bids-filter-file ----------------------------------------------------------

#: Entities a filter may not use: the participant is chosen by its label, the
#: kind of image by the filter's key, and images are NIfTI.
_FILTER_FORBIDDEN = ("subject", "suffix", "datatype", "extension", "scans", "fmap")


def _filter_entities() -> dict[str, str]:
    """pybids entity names (``acquisition``) and BIDS keys (``acq``) -> pybids name."""
    from bids.layout.models import Config

    names: dict[str, str] = {}
    for name, entity in Config.load("bids").entities.items():
        if name in _FILTER_FORBIDDEN:
            continue
        names[name] = name
        key = re.search(r"([A-Za-z]+)-\(", entity.pattern or "")
        if key:
            names.setdefault(key.group(1), name)
    return names


def load_bids_filters(path: Path, modalities: tuple[str, ...]) -> dict[str, dict]:
    """Read and check a ``--bids-filter-file`` (fMRIPrep's format); raise :class:`BIDSError`.

    A JSON object keyed by image kind (``t1w``, ``t2w``, ``flair``, ``pdw``:
    the anat suffixes of ``modalities``, any case) whose values map BIDS
    entities (pybids names such as ``acquisition``, ``reconstruction``,
    ``run``, ``session``, or their keys ``acq``, ``rec``) to a value, a list
    of values, ``null`` (the entity must be absent) or ``"*"`` (any value,
    present). Returns ``{suffix: {pybids entity: value}}``, e.g.
    ``{"T1w": {"acquisition": "mprage", "reconstruction": None}}``.
    """
    from bids_app.io import read_json

    where = f"--bids-filter-file {path}"
    try:
        data = read_json(path)
    except OSError as err:
        raise BIDSError(f"{where}: cannot be read ({err.strerror or err})") from None
    except ValueError as err:
        raise BIDSError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise BIDSError(f"{where}: must hold a JSON object keyed by image kind, e.g. "
                        '{"t1w": {"acquisition": "mprage"}}')
    kinds = {m.lower(): m for m in modalities}
    entities = _filter_entities()
    out: dict[str, dict] = {}
    for key, query in data.items():
        if key.lower() not in kinds:
            raise BIDSError(f"{where}: unknown image kind {key!r} (use "
                            + ", ".join(sorted(kinds)) + ")")
        if not isinstance(query, dict):
            raise BIDSError(f"{where}: {key!r} must map entities to values, got {query!r}")
        checked = {}
        for entity, value in query.items():
            if entity in _FILTER_FORBIDDEN:
                raise BIDSError(f"{where}: {key!r}: entity {entity!r} cannot be filtered "
                                "(participants: --participant-label; suffix: the key)")
            if entity not in entities:
                raise BIDSError(f"{where}: {key!r}: unknown BIDS entity {entity!r} (e.g. "
                                "acquisition, reconstruction, run, session, ceagent, echo)")
            values = value if isinstance(value, list) else [value]
            if not values or not all(v is None or isinstance(v, (str, int)) and not isinstance(
                    v, bool) for v in values):
                raise BIDSError(f"{where}: {key!r}: {entity!r} must be a value, a list of values "
                                f"or null, got {value!r}")
            checked[entities[entity]] = value
        out[kinds[key.lower()]] = checked
    return out


def _same(a, b) -> bool:
    """Entity values equal, numbers as numbers (``run: 1`` matches ``run-01``)."""
    if str(a) == str(b):
        return True
    try:
        return int(str(a)) == int(str(b))
    except ValueError:
        return False


def matches_filter(entities: dict, query: dict) -> bool:
    """True when an image's pybids ``entities`` satisfy one filter ``query``."""
    for entity, wanted in query.items():
        value = entities.get(entity)
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any((value is None) if option is None else (value is not None) if option == "*"
                   else (value is not None and _same(value, option)) for option in options):
            return False
    return True


def find_anat_images(
    layout, subject: str, modalities: list[str], sessions: list[str] | None = None,
    filters: dict[str, dict] | None = None,
) -> list[AnatImage]:
    """All anat NIfTI images of one participant with a suffix in ``modalities``, in
    ``sessions`` if given, and matching ``filters`` (see :func:`load_bids_filters`)."""
    query = dict(subject=subject, datatype="anat", suffix=modalities, return_type="object")
    if sessions:
        query["session"] = sessions
    images = []
    for bids_file in layout.get(**query):
        path = Path(bids_file.path)
        if not path.name.endswith(NIFTI_EXTENSIONS):
            continue
        entities = bids_file.get_entities()
        if filters and not matches_filter(entities, filters.get(entities["suffix"], {})):
            continue
        images.append(
            AnatImage(
                path=path,
                subject=subject,
                session=entities.get("session"),
                suffix=entities["suffix"],
            )
        )
    return sorted(images, key=lambda image: image.path.as_posix())


def subject_dir(output_dir: Path, subject: str, session: str | None = None) -> Path:
    """``output_dir/sub-<label>[/ses-<label>]``."""
    folder = output_dir / f"sub-{subject}"
    return folder / f"ses-{session}" if session else folder


def render_name(image: AnatImage, index: int, extension: str) -> str:
    """``<stem>_desc-render<NN>_<suffix><extension>``."""
    return f"{image.stem}_desc-render{index:02d}_{image.suffix}{extension}"


def faces_desc(model_name: str) -> str:
    """``desc`` value of a face model's embedding files.

    ``faces`` for the default model (sface); ``faces<Name>`` for the others,
    e.g. ``facesDlib`` or ``facesPackBuffalol`` for the pack ``buffalo_l``.
    """
    if model_name == "sface":
        return "faces"
    if model_name.startswith("pack:"):
        model_name = "pack " + Path(model_name[5:]).name
    elif "/" in model_name:  # a pack given by path on the command line
        model_name = "pack " + Path(model_name).name
    words = re.findall(r"[A-Za-z0-9]+", model_name)
    return "faces" + "".join(word[:1].upper() + word[1:].lower() for word in words)


def faces_name(image: AnatImage, extension: str, desc: str = "faces") -> str:
    """``<stem>_desc-<desc>_<suffix><extension>``: the embeddings of an image's renders."""
    return f"{image.stem}_desc-{desc}_{image.suffix}{extension}"


def photo_prefix(subject: str, session: str | None = None) -> str:
    """``sub-<label>[_ses-<label>]``: photos have no source image, so their outputs are
    named after the participant (and session) only."""
    return f"sub-{subject}" + (f"_ses-{session}" if session else "")


def photo_faces_name(subject: str, session: str | None, extension: str, desc: str = "faces") -> str:
    """``sub-<label>[_ses-<label>]_desc-<desc>_photo<extension>``: the embeddings of a
    participant's photos, one row per photo (``desc`` as in :func:`faces_desc`)."""
    return f"{photo_prefix(subject, session)}_desc-{desc}_photo{extension}"


def photo_crop_name(subject: str, session: str | None, index: int) -> str:
    """``sub-<label>[_ses-<label>]_desc-photo<NN>_photo.png``: the aligned face crop of
    photo ``index`` (1-based, in the order of the embedding rows)."""
    return f"{photo_prefix(subject, session)}_desc-photo{index:02d}_photo.png"


def dataset_description(bids_dir: Path) -> dict:
    """The ``dataset_description.json`` of the derivatives dataset."""
    source_name = ""
    try:
        source_name = json.loads((bids_dir / "dataset_description.json").read_text()).get("Name", "")
    except (OSError, ValueError):
        pass
    return {
        "Name": f"facerisk: face re-identification risk{' of ' + source_name if source_name else ''}",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "facerisk",
                "Version": __version__,
                "Description": "Face reconstruction from MRI, renders, face recognition, ranking",
            }
        ],
        "SourceDatasets": [{"URL": bids_dir.as_uri()}],
        "HowToAcknowledge": "See logs/CITATION.md",
    }


def init_derivatives(output_dir: Path, bids_dir: Path) -> None:
    """Create ``output_dir`` with its dataset_description.json and .bidsignore.

    Safe when many participant jobs start at once: each file is written
    atomically, and rewritten only when its content would change.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "logs").mkdir(exist_ok=True)
    description = dataset_description(bids_dir)
    path = output_dir / "dataset_description.json"
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = None
    if current != description:
        atomic_write_json(path, description)
    ignore = output_dir / ".bidsignore"
    if not ignore.is_file() or ignore.read_text() != BIDSIGNORE:
        atomic_write_text(ignore, BIDSIGNORE)


_SUBJECT_DIR = re.compile(r"^sub-([A-Za-z0-9]+)$")


def output_subjects(output_dir: Path) -> list[str]:
    """Participant labels that have a folder in ``output_dir``."""
    return sorted(
        match.group(1)
        for child in output_dir.iterdir()
        if child.is_dir() and (match := _SUBJECT_DIR.match(child.name))
    )
