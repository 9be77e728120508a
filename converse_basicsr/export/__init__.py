"""Export to ONNX (``to_onnx``, ``converse-export``) and run exported files in ONNX Runtime (``load_onnx``).

Needs the ``export`` extra: ``pip install 'converse-basicsr[export]'`` (onnx, onnxruntime, onnxscript).
"""
from .exporter import ExportError, to_onnx
from .runtime import OnnxKernelModel, OnnxModel, OnnxModelError, load_onnx

__all__ = ['ExportError', 'OnnxKernelModel', 'OnnxModel', 'OnnxModelError', 'load_onnx', 'to_onnx']
