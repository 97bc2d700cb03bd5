"""The HTTP and WebSocket gateway: FastAPI routes in front of the Redis queue.

It holds no model (never imports torch or ``model_core``) and no state beyond a Redis client, so
any number of replicas can serve one deployment. :func:`create_app` builds the application.
"""

from service.gateway.app import create_app

__all__ = ["create_app"]
