import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from jetsynth.calibration.features import FEATURES, LayerWork, features, layer_work, model_work
from jetsynth.errors import JetsynthError


def _model(nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, "hand", inputs, outputs,
                              [numpy_helper.from_array(np.zeros(shape, np.float32), name)
                               for name, shape in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _tensor(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def conv_relu_gemm():
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Identity", ["f"], ["i"], name="identity"),
        helper.make_node("Gemm", ["i", "G", "C"], ["y"], transB=1, name="fc"),
    ]
    return _model(nodes, [_tensor("x", ["batch", 1, 8, 8])], [_tensor("y", ["batch", 10])],
                  {"W": (4, 1, 3, 3), "B": (4,), "G": (10, 256), "C": (10,)})


def test_layer_work_of_a_hand_built_graph():
    layers = {w.name: w for w in layer_work(conv_relu_gemm())}
    assert list(layers) == ["conv", "relu", "flatten", "fc"]
    conv, relu, flatten, fc = layers.values()
    assert conv == LayerWork("conv", "Conv", macs=4 * 8 * 8 * 1 * 3 * 3, in_channels=1, out_channels=4,
                             im2col=8 * 8 * 9, outputs=4 * 8 * 8, weights=4 * 1 * 3 * 3 + 4)
    assert relu == LayerWork("relu", "Relu", 0, 0, 0, 0, outputs=256, weights=0)
    assert flatten == LayerWork("flatten", "Flatten", 0, 0, 0, 0, outputs=256, weights=0)
    assert fc == LayerWork("fc", "Gemm", macs=256 * 10, in_channels=256, out_channels=10, im2col=0,
                           outputs=10, weights=10 * 256 + 10)
    assert conv.as_dict()["macs"] == 2304 and conv.as_dict()["im2col"] == 576


def test_features_of_a_query_follow_the_feature_order():
    vector = features(layer_work(conv_relu_gemm()), batch=2)
    expected = {
        "query": 1,
        "operators": 4,
        "weights": (36 + 4) + (2560 + 10),
        "conv_macs": 2 * 2304,
        "gemm_macs": 2 * 2560,
        "im2col": 2 * 576,
        "activations": 2 * (256 + 256 + 256 + 10),
    }
    assert list(expected) == list(FEATURES)
    np.testing.assert_array_equal(vector, np.array(list(expected.values()), dtype=float))


def test_per_query_terms_do_not_grow_with_the_batch():
    layers = layer_work(conv_relu_gemm())
    one, eight = features(layers, 1), features(layers, 8)
    np.testing.assert_array_equal(one[:3], eight[:3])
    np.testing.assert_array_equal(8 * one[3:], eight[3:])


def test_grouped_convolution_counts_each_group_once():
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4,
                              name="depthwise")]
    model = _model(nodes, [_tensor("x", ["batch", 4, 8, 8])], [_tensor("y", ["batch", 4, 8, 8])],
                   {"W": (4, 1, 3, 3)})
    (work,) = layer_work(model)
    assert work.macs == 4 * 8 * 8 * 1 * 3 * 3
    assert work.in_channels == 4 and work.out_channels == 4
    assert work.im2col == 8 * 8 * 4 * 3 * 3


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_untransposed_fully_connected_weight_is_in_by_out(op):
    nodes = [helper.make_node(op, ["x", "G"], ["y"], name="fc")]
    model = _model(nodes, [_tensor("x", ["batch", 256])], [_tensor("y", ["batch", 10])], {"G": (256, 10)})
    (work,) = layer_work(model)
    assert (work.macs, work.in_channels, work.out_channels, work.weights) == (2560, 256, 10, 2560)
    assert features([work], 3)[FEATURES.index("gemm_macs")] == 3 * 2560


def test_constant_nodes_are_not_operators():
    nodes = [
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.ones(3, np.float32))),
        helper.make_node("Add", ["x", "k"], ["y"], name="add"),
    ]
    model = _model(nodes, [_tensor("x", ["batch", 3])], [_tensor("y", ["batch", 3])], {})
    assert [(w.op, w.outputs) for w in layer_work(model)] == [("Add", 3)]


def test_model_work_reads_the_file(tmp_path):
    path = tmp_path / "hand.onnx"
    onnx.save(conv_relu_gemm(), str(path))
    assert model_work(path) == layer_work(conv_relu_gemm())


def test_model_work_of_a_missing_file(tmp_path):
    with pytest.raises(JetsynthError, match="no such file"):
        model_work(tmp_path / "absent.onnx")


def test_model_work_of_random_bytes(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 256, dtype=np.uint8).tobytes())
    with pytest.raises(JetsynthError, match="is not an ONNX model.*export it again"):
        model_work(path)



def test_model_work_of_an_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(JetsynthError):
        model_work(path)



def test_convolution_over_dynamic_image_dimensions_is_refused():
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv")]
    model = _model(nodes, [_tensor("x", ["batch", 1, "height", "width"])],
                   [_tensor("y", ["batch", 4, "height", "width"])], {"W": (4, 1, 3, 3)})
    with pytest.raises(JetsynthError, match="fixed image dimensions"):
        layer_work(model)



def test_fully_connected_weight_from_a_constant_node():
    weight = numpy_helper.from_array(np.zeros((256, 10), np.float32))
    nodes = [
        helper.make_node("Constant", [], ["G"], value=weight),
        helper.make_node("Gemm", ["x", "G"], ["y"], name="fc"),
    ]
    model = _model(nodes, [_tensor("x", ["batch", 256])], [_tensor("y", ["batch", 10])], {})
    (work,) = layer_work(model)
    assert (work.macs, work.in_channels, work.out_channels) == (2560, 256, 10)
