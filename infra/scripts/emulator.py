"""moto's server, with DynamoDB's isolation.

DynamoDB applies each write (a conditional PutItem, UpdateItem, a TransactWriteItems) atomically
and in isolation from concurrent ones, and a read sees an item whole, before or after a write.
moto's threaded server checks conditions and writes without a lock, so two concurrent
transactions can both pass a `stock >= 1` check and both decrement it, and a read can catch an
`UpdateItem` halfway (its `ADD` applied, its `SET` not yet). This runs moto's own WSGI application
with DynamoDB requests serialised, which gives what DynamoDB guarantees (moto holds the GIL either
way, so little concurrency is lost); everything else (SQS long polls included) stays concurrent.

Usage: python emulator.py HOST PORT
"""
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

_dynamodb = threading.Lock()


def serialise_dynamodb(app):
    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            with _dynamodb:
                # Consume the response inside the lock: the work happens while it is produced.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialise_dynamodb(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
