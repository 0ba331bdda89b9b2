"""moto's server, with DynamoDB's write isolation.

DynamoDB applies each write (a conditional PutItem, UpdateItem, a TransactWriteItems) atomically
and in isolation from concurrent ones. moto's threaded server checks conditions and writes without
a lock, so two concurrent transactions can both pass a `stock >= 1` check and both decrement it.
This runs moto's own WSGI application with DynamoDB writes serialised, which is what DynamoDB
guarantees; everything else (SQS long polls included) stays concurrent.

Usage: python emulator.py HOST PORT
"""
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_dynamodb_writes = threading.Lock()


def serialise_dynamodb_writes(app):
    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, _, operation = target.partition(".")
        if service.startswith("DynamoDB_") and operation in DYNAMODB_WRITES:
            with _dynamodb_writes:
                # Consume the response inside the lock: the write happens while it is produced.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialise_dynamodb_writes(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
