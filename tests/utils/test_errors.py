"""One base for the package's bad-input errors: a caller (or a user's script) catches ``ConverseError`` once for a
bad option, model file, image, export or conversion, and each stays a ``ValueError`` as before."""
import pytest

from converse_basicsr.data.io import ImageError, OutputNameError
from converse_basicsr.evaluation.compare_inputs import CompareError
from converse_basicsr.export.exporter import ExportError
from converse_basicsr.export.runtime import OnnxModelError
from converse_basicsr.hub.state_dicts import ZooError
from converse_basicsr.hub.zoo import ChecksumError
from converse_basicsr.inference.folder import UsageError
from converse_basicsr.inference.run import OutputError
from converse_basicsr.nn.convert import ConversionError
from converse_basicsr.utils.checks import ConverseError
from converse_basicsr.utils.options import OptionError
from converse_basicsr.utils.safe_yaml import YAMLRefused

ERRORS = (ImageError, OutputNameError, OutputError, CompareError, ExportError, OnnxModelError, ZooError, ChecksumError,
          UsageError, ConversionError, OptionError, YAMLRefused)


@pytest.mark.parametrize('error', ERRORS, ids=lambda e: e.__name__)
def test_every_bad_input_error_is_a_converse_error_and_a_value_error(error):
    assert issubclass(error, ConverseError)
    assert issubclass(error, ValueError)


def test_an_unreadable_onnx_file_is_caught_as_a_converse_error(tmp_path):
    from converse_basicsr.export.runtime import load_onnx
    path = tmp_path / 'not_onnx.onnx'
    path.write_bytes(b'this is not a protobuf')
    with pytest.raises(ConverseError, match='not_onnx.onnx'):
        load_onnx(path)
