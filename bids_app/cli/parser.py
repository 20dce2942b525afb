"""Command-line parser, following the BIDS-Apps specification.

``facerisk bids_dir output_dir {participant,group} [options]``
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from bids_app import __version__
from bids_app.config import (
    ANALYSIS_LEVELS,
    REPORT_IMAGES,
    SUPPORTED_MODALITIES,
    Settings,
)
from bids_app.rank import SCORINGS

LABEL_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
#: Defaults come from :class:`Settings`, the one place they are set.
_DEFAULT = Settings.default

def _label(prefix: str):
    def parse(value: str) -> str:
        value = value.strip()
        if value.startswith(f"{prefix}-"):
            value = value[len(prefix) + 1 :]
        if not LABEL_PATTERN.match(value):
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a BIDS {prefix} label (letters and digits only)"
            )
        return value

    return parse


def _int_at_least(minimum: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{value!r} must be {minimum} or more")
        return number

    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _score(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} must be between 0 and 1")
    return number


def _umask(value: str) -> int:
    try:
        number = int(value, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an octal umask such as 077") from None
    if not 0 <= number <= 0o777:
        raise argparse.ArgumentTypeError(f"{value!r} is not an octal umask such as 077")
    return number


def _face_models(value: str) -> list[str]:
    from bids_app.face import FACE_MODELS, parse_face_models

    try:
        names = parse_face_models(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return [n if n in FACE_MODELS else str(Path(n).expanduser().resolve()) for n in names]


def _modality(value: str) -> str:
    for known in SUPPORTED_MODALITIES:
        if value.lower() == known.lower():
            return known
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a supported anat suffix (choose from {', '.join(SUPPORTED_MODALITIES)})"
    )


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"facerisk: error: {message} (see facerisk --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``facerisk`` argument parser."""
    parser = _Parser(
        prog="facerisk",
        description=(
            "Measure how re-identifiable participants are from the face in their head MRI: "
            "reconstruct and render the face (participant level), then match photos against "
            "every MRI face and report the re-identification rate (group level)."
        ),
        epilog="Outputs identify people: keep output_dir as protected as the raw data.",
    )
    parser.add_argument("bids_dir", type=Path, help="the root of the BIDS dataset")
    parser.add_argument(
        "output_dir", type=Path, help="where outputs go (a BIDS-Derivatives dataset)"
    )
    parser.add_argument(
        "analysis_level",
        choices=ANALYSIS_LEVELS,
        help="participant: render and embed each face; group: rank and report",
    )
    parser.add_argument("--version", action="version", version=f"facerisk {__version__}")

    bids = parser.add_argument_group("selecting data")
    bids.add_argument(
        "--participant-label", "--participant_label",
        dest="participant_label", nargs="+", type=_label("sub"), default=_DEFAULT("participant_label"),
        metavar="LABEL", help="participants to process (with or without 'sub-'); default: all",
    )
    bids.add_argument(
        "--participant-label-exclude", "--participant_label_exclude",
        dest="participant_label_exclude", nargs="+", type=_label("sub"),
        default=_DEFAULT("participant_label_exclude"), metavar="LABEL",
        help="participants to leave out (with or without 'sub-')",
    )
    bids.add_argument(
        "--session-label", "--session_label",
        dest="session_label", nargs="+", type=_label("ses"), default=_DEFAULT("session_label"),
        metavar="LABEL", help="sessions to process (with or without 'ses-'); default: all",
    )
    bids.add_argument(
        "--modality", nargs="+", type=_modality, default=_DEFAULT("modality"), metavar="SUFFIX",
        help=f"anat suffixes to reconstruct faces from ({', '.join(SUPPORTED_MODALITIES)}); "
        f"default: {' '.join(_DEFAULT('modality'))}, the sequence of the NEJM 2019 study",
    )
    bids.add_argument(
        "--bids-filter-file", "--bids_filter_file", type=Path, default=_DEFAULT("bids_filter_file"),
        metavar="FILE",
        help="JSON choosing images by BIDS entities, as fMRIPrep's: keys t1w, t2w, flair, pdw; "
        'values entity filters, e.g. {"t1w": {"acquisition": "mprage", "reconstruction": null}} '
        '(null: the entity absent; "*": any value; a list: any of these)',
    )
    bids.add_argument(
        "--photos-dir", type=Path, default=_DEFAULT("photos_dir"), metavar="DIR",
        help="participants' photos as DIR/sub-<label>/[ses-<label>/]*.{jpg,jpeg,png}; default: "
        "<bids_dir>/derivatives/photos or <bids_dir>/sourcedata/photos if present",
    )
    bids.add_argument(
        "--skip-bids-validator", "--skip_bids_validator", action="store_true",
        help="do not check the input dataset's file names",
    )
    bids.add_argument(
        "--bids-database-dir", type=Path, default=_DEFAULT("bids_database_dir"), metavar="DIR",
        help="store (and reuse) the pybids index here, e.g. once for all SLURM array tasks",
    )

    face = parser.add_argument_group("rendering and face recognition")
    face.add_argument("--n-renders", type=_positive_int, default=_DEFAULT("n_renders"), metavar="N",
                      help="photo-like renders per MRI face (default: %(default)s, as in the study)")
    face.add_argument("--seed", type=_nonnegative_int, default=_DEFAULT("seed"),
                      help="seed for random light and view (default: %(default)s)")
    face.add_argument("--face-model", dest="face_models", type=_face_models, default=_DEFAULT("face_models"),
                      metavar="NAME[,NAME]",
                      help=f"face backend (default: {','.join(_DEFAULT('face_models'))}): sface "
                      "(YuNet + SFace), dlib, or the path of an "
                      "insightface model pack folder; several, comma-separated, fuse their scores")
    face.add_argument("--render-min-score", type=_score, default=_DEFAULT("render_min_score"), metavar="SCORE",
                      help="face detection threshold on renders (default: %(default)s)")
    face.add_argument("--photo-min-score", type=_score, default=_DEFAULT("photo_min_score"), metavar="SCORE",
                      help="face detection threshold on photos (default: %(default)s)")
    face.add_argument("--min-nose-relief", type=float, default=_DEFAULT("min_nose_relief"), metavar="MM",
                      help="3D face check: a scan shows a face when 40%% of its renders find a nose "
                      "standing this many mm out of the face around it, measured on the surface "
                      "(default: %(default)s; 0 turns the check off)")
    face.add_argument("--top-k", type=_positive_int, default=_DEFAULT("top_k"), metavar="K",
                      help="identities kept per photo when scoring (default: %(default)s, as in the study)")

    group = parser.add_argument_group("group level")
    group.add_argument("--scoring", choices=SCORINGS, default=_DEFAULT("scoring"),
                       help="how photo-to-render similarities become a participant's score: "
                       f"{', '.join(SCORINGS)} (default: %(default)s; nejm: per photo the top-k "
                       "identities' confidences, summed over photos)")
    group.add_argument("--compare-to", type=Path, default=_DEFAULT("compare_to"), metavar="OUTPUT_DIR",
                       help="another facerisk output (e.g. the same data before defacing): report "
                       "the change in detection and re-identification per participant")
    group.add_argument("--report-images", choices=REPORT_IMAGES, default=_DEFAULT("report_images"),
                       help="face images in the HTML report (default: %(default)s; blurred or none "
                       "for a report that can be shared more widely)")
    group.add_argument("--reports-only", action="store_true",
                       help="only rebuild the HTML report and participant pages from the group "
                       "outputs already in output_dir (group level)")

    run = parser.add_argument_group("running")
    run.add_argument("--force", action="store_true",
                     help="redo participants whose outputs are already complete")
    run.add_argument("--nprocs", "--n-cpus", "--n_cpus", type=_positive_int, default=_DEFAULT("nprocs"),
                     help="participants processed in parallel (default: %(default)s)")
    run.add_argument("-w", "--work-dir", type=Path, default=_DEFAULT("work_dir"),
                     help="scratch folder for temporary files")
    run.add_argument("--umask", type=_umask, default=_DEFAULT("umask"),
                     help=f"permissions mask for outputs, octal (default: {_DEFAULT('umask'):03o}, owner only)")
    run.add_argument("-v", "--verbose", action="count", default=_DEFAULT("verbose"),
                     help="more log output (-v, -vv)")
    return parser


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse ``argv`` into :class:`Settings`, checking paths as the BIDS-Apps spec asks."""
    parser = build_parser()
    args = parser.parse_args(argv)
    bids_dir = args.bids_dir.expanduser().resolve()
    output_dir = args.output_dir.expanduser().resolve()
    if not bids_dir.is_dir():
        parser.error(f"bids_dir {args.bids_dir} is not a folder")
    if not (bids_dir / "dataset_description.json").is_file():
        parser.error(f"bids_dir {args.bids_dir} has no dataset_description.json: not a BIDS dataset")
    if output_dir == bids_dir:
        parser.error("output_dir must not be bids_dir")
    if bids_dir in output_dir.parents and (bids_dir / "derivatives") not in [
        output_dir, *output_dir.parents
    ]:
        parser.error(
            f"output_dir {args.output_dir} is inside bids_dir: put it under "
            f"{bids_dir / 'derivatives'} or outside the dataset"
        )
    if output_dir.exists() and not output_dir.is_dir():
        parser.error(f"output_dir {args.output_dir} exists and is not a folder")
    photos_dir = args.photos_dir.expanduser().resolve() if args.photos_dir else None
    if photos_dir is not None and not photos_dir.is_dir():
        parser.error(f"--photos-dir {args.photos_dir} is not a folder")
    filter_file, filters = None, None
    if args.bids_filter_file is not None:
        from bids_app.bids import BIDSError, load_bids_filters

        filter_file = args.bids_filter_file.expanduser().resolve()
        try:
            filters = load_bids_filters(filter_file, SUPPORTED_MODALITIES)
        except BIDSError as err:
            parser.error(str(err))
    nprocs = min(args.nprocs, os.cpu_count() or 1) if args.nprocs else 1
    return Settings(
        bids_dir=bids_dir,
        output_dir=output_dir,
        analysis_level=args.analysis_level,
        participant_label=list(dict.fromkeys(args.participant_label)),
        session_label=list(dict.fromkeys(args.session_label)),
        participant_label_exclude=list(dict.fromkeys(args.participant_label_exclude)),
        bids_filter_file=filter_file,
        bids_filters=filters,
        modality=list(dict.fromkeys(args.modality)),
        photos_dir=photos_dir,
        n_renders=args.n_renders,
        seed=args.seed,
        nprocs=nprocs,
        face_models=args.face_models,
        render_min_score=args.render_min_score,
        photo_min_score=args.photo_min_score,
        min_nose_relief=args.min_nose_relief,
        top_k=args.top_k,
        scoring=args.scoring,
        compare_to=args.compare_to.expanduser().resolve() if args.compare_to else None,
        report_images=args.report_images,
        reports_only=args.reports_only,
        force=args.force,
        skip_bids_validator=args.skip_bids_validator,
        bids_database_dir=args.bids_database_dir.resolve() if args.bids_database_dir else None,
        work_dir=args.work_dir.resolve() if args.work_dir else None,
        umask=args.umask,
        verbose=args.verbose,
    )
