"""A real OTLP/HTTP trace receiver for the tracing tests (tests/tracing.rs): serves
``POST /v1/traces`` (application/x-protobuf), decodes each body with opentelemetry-proto's
``ExportTraceServiceRequest`` and prints one JSON line per span on stdout. Any other request is
answered 404 and printed as ``{"unexpected": path}``.

    python receiver.py [PORT]      (0 or none: a free port; the first line says which)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as exporters use it

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/traces":
            emit({"unexpected": self.path})
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    emit({
                        "traceId": span.trace_id.hex(), "spanId": span.span_id.hex(),
                        "parentSpanId": span.parent_span_id.hex(), "name": span.name,
                        "kind": span.kind, "scope": ss.scope.name, "resource": resource,
                        "attributes": attributes(span.attributes), "status": span.status.code,
                        "traceState": span.trace_state, "contentType": self.headers.get("Content-Type"),
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                    })
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args):  # stdout is the spans' only
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that closes its kept-alive connection (a task process exiting, the worker
        # killed at a test's end) is not an error of the receiver's.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


if __name__ == "__main__":
    server = Server(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
    emit({"listening": server.server_address[1]})
    server.serve_forever()
