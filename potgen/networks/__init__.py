"""Networks potgen runs end to end: float training, quantization, integer inference."""

from .quantized import FloatNetwork, QuantizedNetwork, QuantLayer, quantize_network

__all__ = ["FloatNetwork", "QuantizedNetwork", "QuantLayer", "quantize_network"]
