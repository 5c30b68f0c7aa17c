"""EngineModels built by hand for the engine page's tests and bench: a tiny one with every role, and a generated
residual network of any size (the shape of ResNet blocks: conv, then conv + Add on the block input)."""

from __future__ import annotations

import random

from qdqtool.trt.engine_model import EngineLayer, EngineModel, LayerRole, Precision, TensorPort

I8, F32, F16 = Precision.INT8, Precision.FP32, Precision.FP16


def port(name: str, precision: Precision) -> TensorPort:
    return TensorPort(name, precision)


def tiny_engine() -> EngineModel:
    """input Q -> conv (INT8) -> conv + Add (float skip: FP32 out) -> Q (Reformat) -> conv + pool (INT8)
    -> layout copy -> Concat in FP16 (two readers) -> an unnamed shape layer."""
    layers = (
        EngineLayer("images_q", LayerRole.INPUT_QUANTIZE, ("images_q",), ("QuantizeLinear",),
                    (port("images", F32),), (port("x0", I8),), "the graph input's quantizer", (("images_s", 0.0078),)),
        EngineLayer("Conv_1 + Relu_2", LayerRole.FUSED, ("Conv_1", "Relu_2"), ("Conv", "Relu"),
                    (port("x0", I8),), (port("x1", I8),), "INT8 convolution"),
        EngineLayer("Conv_3 + Add_4", LayerRole.FUSED, ("Conv_3", "Add_4"), ("Conv", "Add"),
                    (port("x1", I8), port("x0", F32)), (port("x2", F32),), "the skip input of Add_4 arrives in float",
                    fix="quantize the skip input of Add_4 at x0's scale"),
        EngineLayer("Q_5", LayerRole.QUANTIZE, ("Q_5",), ("QuantizeLinear",), (port("x2", F32),), (port("x3", I8),),
                    "a float->INT8 boundary", (("x2_s", 0.05),)),
        EngineLayer("Conv_6 + MaxPool_7", LayerRole.FUSED, ("Conv_6", "MaxPool_7"), ("Conv", "MaxPool"),
                    (port("x3", I8),), (port("x4", I8),)),
        EngineLayer("Reformatting CopyNode for x4", LayerRole.LAYOUT, (), (), (port("x4", I8),), (port("x5", I8),)),
        EngineLayer("Concat_8", LayerRole.FLOAT, ("Concat_8",), ("Concat",), (port("x5", F16), port("x3", F16)),
                    (port("x6", F16),), "a Concat in float"),
        EngineLayer("shape_9", LayerRole.OTHER, ("Shape_9",), ("Shape",), (port("x6", F16),),
                    (port("s", Precision.INT64),)),
    )
    return EngineModel("hand-built", layers)


def residual_engine(layers: int, float_every: int = 97) -> EngineModel:
    """`layers` layers: pairs (conv; conv + Add of the pair's input), every float_every-th pair with a float skip
    (its output FP32, then a standalone Q back to INT8). Execution order, tensor names t0, t1, ..."""
    made: list[EngineLayer] = [EngineLayer("input_q", LayerRole.INPUT_QUANTIZE, ("input_q",), ("QuantizeLinear",),
                                           (port("input", F32),), (port("t0", I8),))]
    tensor, block_in, pair = 0, 0, 0
    while len(made) < layers:
        i = len(made)
        if len(made) % 2 == 1:   # first conv of a pair
            block_in = tensor
            made.append(EngineLayer(f"Conv_{i}", LayerRole.FUSED, (f"Conv_{i}",), ("Conv",),
                                    (port(f"t{tensor}", I8),), (port(f"t{i}", I8),)))
        else:
            pair += 1
            skip = F32 if pair % float_every == 0 else I8
            made.append(EngineLayer(f"Conv_{i} + Add_{i}", LayerRole.FUSED, (f"Conv_{i}", f"Add_{i}"), ("Conv", "Add"),
                                    (port(f"t{tensor}", I8), port(f"t{block_in}", skip)), (port(f"t{i}", skip),)))
            if skip == F32 and len(made) < layers:
                made.append(EngineLayer(f"Q_{i}", LayerRole.QUANTIZE, (f"Q_{i}",), ("QuantizeLinear",),
                                        (port(f"t{i}", F32),), (port(f"t{i}q", I8),)))
                i = f"{i}q"
        tensor = i
    return EngineModel("generated", tuple(made[:layers]))


REASON = ("CaskConvolution: int8 -> int8, tactic sm80_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c"
          "_32kcrs_vect_c_32_nchw_vect_c_32_tilesize128x128x64_stage4_warpsize2x2x1_g1_tensor16x8x32")


def irregular_engine(layers: int, seed: int = 0) -> EngineModel:
    """Each layer reads the previous one and, one time in three, a tensor 2 to 12 layers back: no two segments
    alike. Names and reasons as long as TensorRT's."""
    rng = random.Random(seed)
    made = []
    for i in range(layers):
        inputs = [TensorPort(f"/backbone/stage{i // 50}/t{i - 1}", Precision.INT8)] if i else []
        if i > 12 and rng.random() < 1 / 3:
            inputs.append(TensorPort(f"/backbone/stage{(i - 12) // 50}/t{i - rng.randint(2, 12)}", Precision.INT8))
        precision = Precision.FP16 if rng.random() < 0.05 else Precision.INT8
        nodes = (f"/backbone/stage{i // 50}/conv{i}/Conv", f"/backbone/stage{i // 50}/act{i}/Relu")
        made.append(EngineLayer(" + ".join(nodes), LayerRole.FUSED, nodes, ("Conv", "Relu"), tuple(inputs),
                                (TensorPort(f"/backbone/stage{i // 50}/t{i}", precision),), REASON))
    return EngineModel("generated", tuple(made))
