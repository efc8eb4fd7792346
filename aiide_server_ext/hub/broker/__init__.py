"""``aiide-broker``: the JupyterHub service that holds the provider keys (its own process,
``python -m aiide_server_ext.hub``).

``app`` (``BrokerApp``, its traits and routes) builds one ``service.Broker`` (courses,
keys, identity, shared state) and hands it to the handlers: ``handlers`` (the base and
``api/me``, ``api/courses``), ``relay`` (the model calls), ``usage``, ``roster``,
``audit``, ``sharing`` and ``health`` (instructors and operators). ``state`` (Redis) is
rebuilt from ``durable`` (the database); ``recorder`` batches usage and audit.
"""
