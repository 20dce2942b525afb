"""facerisk: how re-identifiable are participants from the face in their head MRI?"""

__version__ = "0.1.0"
__packagename__ = "facerisk"
