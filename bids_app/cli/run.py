"""``facerisk`` entry point: participant and group levels.

Exit codes: 0 all done; 1 some participants failed (the others were
processed); 2 bad arguments or unusable input dataset.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2

LOGGER = logging.getLogger("facerisk")

# Headless rendering through EGL (Mesa llvmpipe on CPU-only machines); must be
# set before VTK creates its first window.
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def setup_logging(settings) -> logging.Handler:
    """Log to stderr (INFO, or DEBUG with -vv) and to ``output_dir/logs/``."""
    level = logging.DEBUG if settings.verbose > 1 else logging.INFO
    LOGGER.setLevel(logging.DEBUG)
    LOGGER.propagate = False
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level if settings.verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s facerisk %(levelname)s: %(message)s", "%H:%M:%S"))
    LOGGER.addHandler(console)
    logs = settings.output_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    labels = "-".join(settings.participant_label[:3]) if settings.participant_label else "all"
    name = f"facerisk_{settings.analysis_level}_{labels}_{stamp}_{os.getpid()}.log"
    logfile = logging.FileHandler(logs / name, encoding="utf-8")
    logfile.setLevel(logging.DEBUG)
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOGGER.addHandler(logfile)
    return logfile


def _write_run_config(settings, stamp: str) -> None:
    from bids_app.boilerplate import software_versions
    from bids_app.io import atomic_write_json

    payload = settings.to_json() | {"software": software_versions()}
    labels = "-".join(settings.participant_label[:3]) if settings.participant_label else "all"
    atomic_write_json(
        settings.output_dir / "logs" / f"config_{settings.analysis_level}_{labels}_{stamp}_{os.getpid()}.json",
        payload,
    )


# -- participant level -------------------------------------------------------

_WORKER: dict = {}

#: onnxruntime threads per participant process, at most: two take SFace's embedding of 10 renders
#: from 0.39 to 0.21-0.26 s on a 2-core machine with the same embeddings; more were not measured.
MAX_MODEL_THREADS = 2


def model_threads(processes: int) -> int:
    """onnxruntime threads for each of ``processes`` participant processes: the CPUs this process
    may run on (its affinity: a SLURM task's allocation), shared out, 1 to :data:`MAX_MODEL_THREADS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_MODEL_THREADS, cpus // max(1, int(processes))))


def _worker_init(settings, database_dir, threads: int) -> None:
    """Per worker process, once: umask, logging, face model and BIDS index.

    ``database_dir`` is the pybids index the parent built (see
    :func:`_layout_database`): the worker opens it instead of walking the
    dataset again.
    """
    from bids_app import bids as bidsio
    from bids_app.face import load_face_model

    os.umask(settings.umask)
    setup_logging(settings)
    _WORKER["models"] = [load_face_model(name, threads=threads) for name in settings.face_models]
    _WORKER["layout"] = bidsio.load_layout(settings.bids_dir, database_dir,
                                           validate=not settings.skip_bids_validator)


def _worker_run(subject: str, settings):
    from bids_app.workflows.participant import run_participant

    return run_participant(subject, _WORKER["layout"], settings, _WORKER["models"])


@contextmanager
def _layout_database(settings):
    """The folder of the pybids index for this run (None: kept in memory).

    ``--bids-database-dir`` as given. Otherwise, with several processes, a
    private folder in the scratch space (``-w``, else the system's temporary
    folder) that is removed at the end: the parent indexes the dataset into
    it once (:func:`bids_app.bids.load_layout`, the same atomic build as
    ``--bids-database-dir``) and every worker opens that index instead of
    indexing the dataset again, which takes minutes for a large dataset. One
    process keeps its index in memory.
    """
    if settings.bids_database_dir is not None or settings.nprocs <= 1:
        yield settings.bids_database_dir
        return
    with tempfile.TemporaryDirectory(prefix="facerisk_pybids_") as scratch:
        yield Path(scratch) / "layout"


def run_participant_level(settings) -> int:
    with _layout_database(settings) as database_dir:
        return _run_participants(settings, database_dir)


def _run_participants(settings, database_dir) -> int:
    from bids_app import bids as bidsio
    from bids_app.face import load_face_model
    from bids_app.workflows.participant import ParticipantError, run_participant

    if not settings.skip_bids_validator:
        LOGGER.info("validating %s (bids-validator-deno)", settings.bids_dir)
        problems = bidsio.run_bids_validator(settings.bids_dir)
        if problems:
            raise bidsio.BIDSError(
                f"{settings.bids_dir}: the BIDS validator found {len(problems)} kind(s) of error "
                f"(fix them, or pass --skip-bids-validator): " + " | ".join(problems[:4])
                + (" | ..." if len(problems) > 4 else "")
            )
    bidsio.init_derivatives(settings.output_dir, settings.bids_dir)
    layout = bidsio.load_layout(settings.bids_dir, database_dir, validate=not settings.skip_bids_validator)
    subjects = bidsio.select_subjects(layout, settings.participant_label,
                                      settings.participant_label_exclude)
    unused = sorted(set(settings.bids_filters or {}) - set(settings.modality))
    if unused:
        LOGGER.warning("--bids-filter-file %s: filters for %s are not used (--modality %s)",
                       settings.bids_filter_file, ", ".join(unused), " ".join(settings.modality))
    LOGGER.info("participant level: %d participant(s), modality %s, %d renders each",
                len(subjects), "+".join(settings.modality), settings.n_renders)
    failures: dict[str, str] = {}
    results = []

    def report(number, subject, outcome):
        if isinstance(outcome, BaseException):
            reason = str(outcome)
            if not isinstance(outcome, (ParticipantError, ValueError)):
                reason = f"unexpected {type(outcome).__name__}: {reason}"
            if not reason.startswith(f"sub-{subject}"):
                reason = f"sub-{subject}: {reason}"
            failures[subject] = reason
            LOGGER.error("[%d/%d] FAILED %s", number, len(subjects), reason)
            LOGGER.debug("traceback for sub-%s", subject, exc_info=outcome)
        elif outcome is None:
            LOGGER.info("[%d/%d] sub-%s already complete: skipped", number, len(subjects), subject)
        else:
            results.append(outcome)
            LOGGER.info("[%d/%d] sub-%s done in %.1f s: face in %d/%d renders, %d/%d photos",
                        number, len(subjects), subject, outcome.seconds, outcome.renders_with_face,
                        outcome.renders, outcome.photos_with_face, outcome.photos)

    if settings.nprocs > 1 and len(subjects) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        workers = min(settings.nprocs, len(subjects))
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                 initargs=(settings, database_dir, model_threads(workers))) as pool:
            futures = {pool.submit(_worker_run, s, settings): s for s in subjects}
            for number, future in enumerate(as_completed(futures), start=1):
                subject = futures[future]
                error = future.exception()
                report(number, subject, error if error else future.result())
    else:
        models = [load_face_model(name, threads=model_threads(1)) for name in settings.face_models]
        for number, subject in enumerate(subjects, start=1):
            LOGGER.info("[%d/%d] sub-%s", number, len(subjects), subject)
            try:
                outcome = run_participant(subject, layout, settings, models)
            except Exception as err:  # one participant must not stop the others
                outcome = err
            report(number, subject, outcome)

    if failures:
        LOGGER.error("%d of %d participant(s) failed: %s", len(failures), len(subjects),
                     "; ".join(failures.values()))
        return EXIT_PARTIAL
    return EXIT_OK


# -- group level ---------------------------------------------------------------

def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def _rate_text(item: dict) -> str:
    """``"81.0% (95% CI 70.1-88.6%)"``, or ``"n/a"`` when nobody could be ranked (rate None)."""
    if item.get("rate") is None:
        return "n/a"
    return f"{_percent(item['rate'])} (95% CI {100 * item['ci_low']:.1f}-{100 * item['ci_high']:.1f}%)"


def run_group_level(settings) -> int:
    from bids_app.workflows.group import run_group

    summary = run_group(settings)
    stats = summary["reidentification"]
    detection = summary["detection"]
    LOGGER.info("face detected in %d/%d MRI renders (%d of %d participants)",
                detection["renders_detected"], detection["renders_total"],
                detection["participants_with_face"], summary["n_participants"])
    if summary["n_with_photos"]:
        for key in ("top1", "top5"):
            item = stats[key]
            LOGGER.info("%s: %d/%d = %s (chance %s)", key, item["hits"], item["n"], _rate_text(item),
                        _percent(item["chance"]))
        verification = summary.get("verification")
        if verification and verification.get("auc") is not None:
            LOGGER.info("verification AUC %.3f (%d true, %d impostor photo-render pairs)",
                        verification["auc"], verification["n_genuine"], verification["n_impostor"])
    else:
        LOGGER.info("no photos: only what the MRI itself gives away was measured")
    linkage = summary.get("linkage")
    if linkage and linkage.get("n"):
        item = linkage["top1"]
        LOGGER.info("linkage of scans of one person, top1: %d/%d = %s", item["hits"], item["n"],
                    _rate_text(item))
    comparison = summary.get("comparison")
    if comparison:
        LOGGER.info("compared with %s: renders with a face %s -> %s; face still detected for "
                    "%d/%d participants, still identified: %d", comparison["compare_to"],
                    _percent(comparison["detection_rate_compare"]), _percent(comparison["detection_rate"]),
                    comparison["n_still_detected"], comparison["n_common"],
                    comparison["n_still_identified"])
    LOGGER.info("report: %s", settings.output_dir / "facerisk.html")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from bids_app.cli.parser import parse_args

    settings = parse_args(argv)
    os.umask(settings.umask)
    if settings.work_dir is not None:
        # scratch for anything libraries write as temporary files
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(settings.work_dir)
        os.environ.setdefault("MPLCONFIGDIR", str(settings.work_dir / "matplotlib"))
        tempfile.tempdir = str(settings.work_dir)
    started = time.perf_counter()
    if settings.reports_only and settings.analysis_level != "group":
        print("facerisk: error: --reports-only rebuilds the group report: use it with the group level",
              file=sys.stderr)
        return EXIT_USAGE
    if settings.analysis_level == "group" and not settings.output_dir.is_dir():
        print(f"facerisk: error: output_dir {settings.output_dir} does not exist: "
              "run the participant level first", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings.output_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(settings)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        _write_run_config(settings, stamp)
        if settings.analysis_level == "participant":
            code = run_participant_level(settings)
        else:
            code = run_group_level(settings)
    except (ValueError, RuntimeError, OSError) as err:
        if LOGGER.handlers:
            LOGGER.error("%s", err)
        else:
            print(f"facerisk: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    LOGGER.info("finished in %.1f s", time.perf_counter() - started)
    return code
