"""``python -m aiide_server_ext.hub --config broker_config.py``: run the key broker."""

from .broker.app import main

main()
