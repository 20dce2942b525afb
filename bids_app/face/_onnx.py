"""ONNX helpers shared by the backends: file hashes, input clean-up, sessions, graph inspection.

Nothing here downloads anything: every function takes a local file.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GraphSummary", "cleaned_onnx", "onnx_session", "sha256", "summarize_graph"]


@functools.lru_cache(maxsize=None)
def sha256(path: Path) -> str:
    """Hex SHA-256 of the file at *path* (cached per path and process)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fobj:
        for chunk in iter(lambda: fobj.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, str]:
    """``{"Name", "SHA256"}`` of a model file, as recorded in ``FaceModel.info``."""
    return {"Name": Path(path).name, "SHA256": sha256(path)}


def _true_inputs(graph: Any) -> list[Any]:
    """Graph inputs that are fed at run time: used by a node and not initialised."""
    initialised = {init.name for init in graph.initializer}
    used = {name for node in graph.node for name in node.input}
    used.update(out.name for out in graph.output)
    return [inp for inp in graph.input if inp.name not in initialised and inp.name in used]


@functools.lru_cache(maxsize=None)
def cleaned_onnx(path: Path) -> bytes:
    """The ONNX model at *path*, serialised without spurious graph inputs.

    Exporters of that era listed every weight among the graph inputs as well
    as the initializers; the int8 SFace file also keeps inputs no node uses.
    onnxruntime warns about the former and older releases reject the latter.
    Only true inputs (used, not initialised) are kept. Files without such
    inputs come back unchanged.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    keep = _true_inputs(graph)
    if len(keep) != len(graph.input):
        del graph.input[:]
        graph.input.extend(keep)
    return model.SerializeToString()


@functools.lru_cache(maxsize=None)
def onnx_session(path: Path, threads: int, dequantise_once: bool = False) -> Any:
    """One onnxruntime CPU session per (file, thread count, options) and process.

    Built from :func:`cleaned_onnx`; ``InferenceSession.run`` is thread-safe,
    so the session is shared.

    ``dequantise_once``: for files that store every weight as
    ``DequantizeLinear`` of int8 blocks (OpenCV zoo's ``int8bq`` models).
    onnxruntime keeps such nodes for its quantised-operator fusions, so it
    dequantises every weight on every run and cannot fold batch norms into
    the convolutions; with those QDQ optimisations off, constant folding
    turns the weights into float32 once, at load. For SFace: about 46 ms
    per crop on one thread before, 28 ms after, the same embeddings up to
    float rounding (largest difference 5e-7).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if dequantise_once:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(cleaned_onnx(path), options, providers=["CPUExecutionProvider"])


Shape = tuple[int | str | None, ...]


@dataclass(frozen=True)
class GraphSummary:
    """What an ONNX file looks like from outside, enough to tell models apart.

    Attributes
    ----------
    inputs, outputs : tuple of (name, shape)
        True inputs (see :func:`cleaned_onnx`) and outputs; a dimension is an
        int when fixed, its symbolic name (str) or None when not.
    input_ops : tuple of str
        Operator types of the nodes reading the first input (e.g. ``("Sub",)``
        when the graph normalises pixel values itself).
    """

    inputs: tuple[tuple[str, Shape], ...]
    outputs: tuple[tuple[str, Shape], ...]
    input_ops: tuple[str, ...]

    def describe(self) -> str:
        """One-line description such as ``input 1x3x112x112, 1 output (1x512)``."""

        def fmt(shape: Shape) -> str:
            return "x".join(str(d) if isinstance(d, int) else "?" for d in shape)

        ins = ", ".join(fmt(s) for _, s in self.inputs) or "none"
        outs = ", ".join(fmt(s) for _, s in self.outputs[:4])
        more = ", ..." if len(self.outputs) > 4 else ""
        plural = "s" if len(self.outputs) != 1 else ""
        return f"input {ins}; {len(self.outputs)} output{plural} ({outs}{more})"


def _shape(value_info: Any) -> Shape:
    dims: list[int | str | None] = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(str(dim.dim_param))
        else:
            dims.append(None)
    return tuple(dims)


@functools.lru_cache(maxsize=None)
def summarize_graph(path: Path) -> GraphSummary:
    """Inputs, outputs and first operators of the ONNX graph at *path*.

    Raises
    ------
    ValueError
        if the file is not a readable ONNX model.
    """
    import onnx

    try:
        # weights are not needed to see the graph's interface
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError, OSError, ...
        raise ValueError(f"not a readable ONNX model ({type(err).__name__}: {err})") from None
    graph = model.graph
    inputs = tuple((inp.name, _shape(inp)) for inp in _true_inputs(graph))
    outputs = tuple((out.name, _shape(out)) for out in graph.output)
    first = inputs[0][0] if inputs else None
    input_ops = tuple(node.op_type for node in graph.node if first is not None and first in node.input)
    return GraphSummary(inputs=inputs, outputs=outputs, input_ops=input_ops)
