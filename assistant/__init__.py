"""Document question-answering assistant: cited answers from your documents, offline."""
from .offline import configure_environment as _configure

_configure()

__version__ = "0.1.0"
__all__ = ["__version__"]
