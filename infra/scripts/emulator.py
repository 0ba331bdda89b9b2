"""moto's server, with DynamoDB's isolation.

DynamoDB applies each write (a conditional PutItem, UpdateItem, a TransactWriteItems) atomically
and in isolation from concurrent ones, and a read sees an item whole, before or after a write.
moto's threaded server checks conditions and writes without a lock, so two concurrent
transactions can both pass a `stock >= 1` check and both decrement it, and a read can catch an
`UpdateItem` halfway (its `ADD` applied, its `SET` not yet). This runs moto's own WSGI application
with DynamoDB requests serialised, which gives what DynamoDB guarantees (moto holds the GIL either
way, so little concurrency is lost); everything else (SQS long polls included) stays concurrent.

It also gives SQS FIFO queues their ordering guarantee: while a message group has a message in
flight, no receive hands out another message of that group. moto checks this against the groups
in flight when a receive *starts*, so a long poll that began before a message of the group was
received by someone else still takes the group's next message, and two consumers work on one group
at once (seen: the chat push job ran for messages 2 and 3 of a conversation at the same time, and
a client got message 2 twice). Here a long poll is a series of non-waiting receives, each one
under a lock, each one checking the groups in flight at that moment.

Usage: python emulator.py HOST PORT
"""
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from moto.sqs.models import SQSBackend
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


_sqs = threading.RLock()
_receive = SQSBackend.receive_message
_delete = SQSBackend.delete_message
_change_visibility = SQSBackend.change_message_visibility


def receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names=None):
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    queue = self.get_queue(queue_name)
    while True:
        with _sqs:
            result = _receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        left = deadline - time.monotonic()
        if result or left <= 0:
            return result
        # A new message wakes the wait at once. Visible messages that could not be handed out
        # belong to groups in flight: look again shortly, when one of those may be done.
        with queue._messages_lock:
            queue._messages_lock.wait(min(left, 0.05 if queue.messages else 1.0))


def delete_message(self, queue_name, receipt_handle):
    with _sqs:
        return _delete(self, queue_name, receipt_handle)


def change_message_visibility(self, queue_name, receipt_handle, visibility_timeout):
    with _sqs:
        return _change_visibility(self, queue_name, receipt_handle, visibility_timeout)


SQSBackend.receive_message = receive_message
SQSBackend.delete_message = delete_message
SQSBackend.change_message_visibility = change_message_visibility


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialise_dynamodb(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
