"""The demo shop: an ordinary little web shop used as the upstream site in demos
and browser tests (``cobrowse demo`` runs it behind the proxy).

    from cobrowse.demo import create_shop_app
    app = create_shop_app()
"""

from .shop import create_shop_app

__all__ = ["create_shop_app"]
