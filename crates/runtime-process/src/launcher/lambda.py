# Gust's Python runtime client for Lambda handlers (decision 0025). It speaks the Lambda
# Runtime API at $AWS_LAMBDA_RUNTIME_API as AWS's managed runtimes do: import the handler
# named by $_HANDLER (module.function) from $LAMBDA_TASK_ROOT, then loop: GET /next, call
# handler(event, context), POST /response or /error. Before each answer it writes a sentinel
# line on stdout and stderr, which closes that invocation's logs for Gust.
import importlib
import json
import os
import socket
import sys
import time
import traceback

SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n'
API = os.environ['AWS_LAMBDA_RUNTIME_API']
PREFIX = '/2018-06-01/runtime'


def end_logs():
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout.write(SENTINEL)
    sys.stderr.write(SENTINEL)
    sys.stdout.flush()
    sys.stderr.flush()


class Api:
    """A keep-alive HTTP/1.1 client of the Runtime API, just enough for it (the answers have
    a Content-Length); http.client costs more per call than the handler of a small function."""

    def __init__(self):
        host, port = API.rsplit(':', 1)
        self.address = (host, int(port))
        self.sock = None
        self.buf = b''

    def _connect(self):
        self.sock = socket.create_connection(self.address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('the Runtime API closed the connection')
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        head, self.buf = self.buf[:i], self.buf[i:]
        return head

    def _read_exactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError('the Runtime API closed the connection')
            self.buf += chunk
        body, self.buf = self.buf[:n], self.buf[n:]
        return body

    def call(self, method, path, body=None, headers=None):
        request = '%s %s%s HTTP/1.1\r\nHost: %s\r\n' % (method, PREFIX, path, API)
        for k, v in (headers or {}).items():
            request += '%s: %s\r\n' % (k, v)
        if body is not None:
            request += 'Content-Length: %d\r\n' % len(body)
        data = request.encode('latin-1') + b'\r\n' + (body or b'')
        for attempt in (0, 1):
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(data)
                head = self._read_until(b'\r\n\r\n').decode('latin-1').split('\r\n')
                status = int(head[0].split(' ', 2)[1])
                fields = {}
                for line in head[1:]:
                    if ':' in line:
                        k, v = line.split(':', 1)
                        fields[k.strip().lower()] = v.strip()
                return status, fields, self._read_exactly(int(fields.get('content-length', '0')))
            except (OSError, ValueError, IndexError):
                if self.sock is not None:
                    self.sock.close()
                self.sock = None
                if attempt:
                    raise


def error_body(e, request_id=None):
    body = {
        'errorMessage': str(e),
        'errorType': type(e).__name__,
        'stackTrace': traceback.format_tb(e.__traceback__),
    }
    if request_id:
        body['requestId'] = request_id
    return json.dumps(body).encode()


class CognitoIdentity:
    cognito_identity_id = None
    cognito_identity_pool_id = None


class LambdaContext:
    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get('AWS_LAMBDA_FUNCTION_NAME')
        self.function_version = os.environ.get('AWS_LAMBDA_FUNCTION_VERSION')
        self.memory_limit_in_mb = os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE')
        self.log_group_name = os.environ.get('AWS_LAMBDA_LOG_GROUP_NAME')
        self.log_stream_name = os.environ.get('AWS_LAMBDA_LOG_STREAM_NAME')
        self.identity = CognitoIdentity()
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)


def load_handler():
    task_root = os.environ.get('LAMBDA_TASK_ROOT', '/action')
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    handler = os.environ.get('_HANDLER', '')
    try:
        module_name, function_name = handler.rsplit('.', 1)
    except ValueError:
        raise ValueError("Bad handler '%s': expected module.function" % handler)
    module = importlib.import_module(module_name.replace('/', '.'))
    fn = getattr(module, function_name, None)
    if fn is None:
        raise AttributeError("Handler '%s' missing on module '%s'" % (function_name, module_name))
    return fn


def main():
    api = Api()
    try:
        handler = load_handler()
    except Exception as e:
        traceback.print_exc()
        end_logs()
        kind = 'Runtime.ImportModuleError' if isinstance(e, ImportError) else 'Runtime.HandlerNotFound'
        body = json.loads(error_body(e))
        body['errorType'] = kind
        api.call('POST', '/init/error', json.dumps(body).encode(),
                 {'Lambda-Runtime-Function-Error-Type': kind})
        sys.exit(1)
    end_logs()
    while True:
        _, fields, event_bytes = api.call('GET', '/invocation/next')
        request_id = fields.get('lambda-runtime-aws-request-id')
        deadline = int(fields.get('lambda-runtime-deadline-ms') or '0')
        arn = fields.get('lambda-runtime-invoked-function-arn')
        trace = fields.get('lambda-runtime-trace-id')
        if trace:
            os.environ['_X_AMZN_TRACE_ID'] = trace
        else:
            os.environ.pop('_X_AMZN_TRACE_ID', None)
        context = LambdaContext(request_id, deadline, arn)
        try:
            event = json.loads(event_bytes) if event_bytes else None
            result = json.dumps(handler(event, context), allow_nan=False).encode()
            path = '/invocation/%s/response' % request_id
        except Exception as e:
            traceback.print_exc()
            result = error_body(e, request_id)
            path = '/invocation/%s/error' % request_id
        end_logs()
        api.call('POST', path, result, {'Content-Type': 'application/json'})


main()
