"""Reading pickled datasets (CIFAR-10 batches, mnist.pkl.gz) without letting the file run code.

A pickle names the callables that rebuild its objects; the ordinary unpickler imports and calls
whatever it names, so a planted file can run ``os.system``. This unpickler admits only what the
datasets need: plain containers, numbers, str / bytes (built by the pickle machine itself, no global
needed) and numpy arrays, through numpy's own array-reconstruction functions.
"""
import io
import pickle

# (module, name) pairs a numpy array or scalar pickle refers to, for numpy 1.x and 2.x module names.
ALLOWED = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    # protocol 5 pickles an array as _frombuffer(buffer, dtype, shape, order)
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    # Python 3 writes bytes in protocol <= 2 as _codecs.encode(text, 'latin1'): a pure conversion
    ("_codecs", "encode"),
})


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle asks for a callable outside the admitted set (it could run code)."""


class DataUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` restricted to :data:`ALLOWED` globals."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise ForbiddenGlobal(f"the pickle refers to {module}.{name}, which a data file never needs "
                                  "(it could run code); refusing to load it")
        return super().find_class(module, name)


def load_data_pickle(handle, encoding: str = "ASCII"):
    """Unpickle containers, numbers, strings and numpy arrays from an open binary file; nothing else."""
    return DataUnpickler(handle, encoding=encoding).load()


def loads_data_pickle(data: bytes, encoding: str = "ASCII"):
    return load_data_pickle(io.BytesIO(data), encoding=encoding)
