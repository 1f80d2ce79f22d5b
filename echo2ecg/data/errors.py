"""The one exception type that turns a bad input file into a ledger row."""


class InputRejected(Exception):
    """An input file the pipeline cannot use; ``reason`` is a sentence a person understands.

    Readers and preprocessing raise this for anything wrong with the *file* (unreadable,
    wrong kind, implausible size, flat signal, ...). The shard runner records it in the
    ledger and moves on; any other exception is a bug and is also recorded, with its type.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
