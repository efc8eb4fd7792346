"""The classroom part of a student's single-user server (the ``aiide_server_ext.hub``
server extension; ``part.load`` is its entry point): course gate, course routes, the
agent's providers pointed at the broker."""
