"""Echo2ECG: ECG representations aligned with multi-view echocardiography studies."""

__version__ = "0.1.0"
